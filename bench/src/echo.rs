//! The echo baseline: a raw tonic unary echo server (run as a child process,
//! `steplab-bench echo-serve`) and the closed-loop load against it, as in
//! shared/tools/grpc-baseline.

use crate::load::{self, Outcome};
use crate::stats::Figure;
use std::net::SocketAddr;
use std::time::Duration;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status};

pub mod pb {
    tonic::include_proto!("echo");
}
use pb::echo_client::EchoClient;
use pb::echo_server::{Echo, EchoServer};
use pb::{EchoReply, EchoRequest};

struct EchoSvc;

#[tonic::async_trait]
impl Echo for EchoSvc {
    async fn echo(&self, req: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let EchoRequest { id, name, body } = req.into_inner();
        Ok(Response::new(EchoReply { id, name, body }))
    }
}

/// `echo-serve`: serves until killed, after printing `listening on ADDR`.
pub async fn serve(port: u16) -> anyhow::Result<()> {
    let incoming = TcpIncoming::bind(([127, 0, 0, 1], port).into())?.with_nodelay(Some(true));
    println!("listening on {}", incoming.local_addr()?);
    Server::builder().add_service(EchoServer::new(EchoSvc)).serve_with_incoming(incoming).await?;
    Ok(())
}

/// About 200 bytes of string fields, as the baseline sends.
fn request() -> EchoRequest {
    EchoRequest {
        id: "3f2b8c1e-9d4a-4e7b-8a61-5c0f2d9e7b13".into(),
        name: "grpc-baseline/echo-client".into(),
        body: "x".repeat(135),
    }
}

/// Echo calls/s at `clients` concurrent callers over `connections` HTTP/2 connections.
pub async fn measure(
    addr: SocketAddr,
    clients: usize,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    cpu_pids: Vec<(String, u32)>,
) -> anyhow::Result<Figure> {
    let mut conns = Vec::new();
    for _ in 0..connections.max(1) {
        let ch = Endpoint::from_shared(format!("http://{addr}"))?.tcp_nodelay(true).connect().await?;
        conns.push(EchoClient::new(ch));
    }
    let result = load::closed_loop(clients, warmup, duration, cpu_pids, |i| {
        let client = conns[i % conns.len()].clone();
        let req = request();
        move |_n: u64| {
            let mut client = client.clone();
            let req = req.clone();
            async move {
                match client.echo(req).await {
                    Ok(_) => Outcome::Ok,
                    Err(s) => Outcome::Error(format!("{s:?}")),
                }
            }
        }
    })
    .await;
    Ok(result.figure("echo", "-", clients as u64))
}
