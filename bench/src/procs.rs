//! Child processes and what /proc says about them: CPU placement with
//! `taskset`, resident memory, CPU time.

use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Where servers and the load generator run.
#[derive(Debug, Clone)]
pub struct Placement {
    /// `taskset -c 0` before every server command, or nothing.
    pub server_prefix: Vec<String>,
    pub description: String,
}

impl Placement {
    /// Servers on CPU 0 and this process (the load generator) on CPU 1 when
    /// `taskset` exists and there are two CPUs; otherwise unpinned. Must run
    /// before any thread is started, so every later thread inherits it.
    pub fn pin_self(enabled: bool) -> Placement {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let unpinned = |why: &str| Placement { server_prefix: Vec::new(), description: format!("unpinned ({why})") };
        if !enabled {
            return unpinned("--no-pin");
        }
        if cpus < 2 {
            return unpinned("fewer than 2 CPUs");
        }
        let pinned = std::process::Command::new("taskset")
            .args(["-p", "-c", "1", &std::process::id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match pinned {
            Ok(s) if s.success() => Placement {
                server_prefix: vec!["taskset".into(), "-c".into(), "0".into()],
                description: "servers on CPU 0, load generator on CPU 1 (taskset)".into(),
            },
            _ => unpinned("taskset not available"),
        }
    }

    /// A command for a server process, with the placement applied.
    pub fn server_command(&self, program: &std::path::Path) -> Command {
        match self.server_prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(program);
                c
            }
            None => Command::new(program),
        }
    }
}

/// A server child process; killed when dropped.
pub struct Server {
    pub name: String,
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Server {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM, then wait up to `grace` before SIGKILL.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            if tokio::time::timeout(grace, self.child.wait()).await.is_err() {
                let _ = self.child.kill().await;
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Starts the echo server (this binary's `echo-serve`) with the placement,
/// and reads the address it prints.
pub async fn start_echo(placement: &Placement, log_dir: &std::path::Path) -> anyhow::Result<Server> {
    let exe = std::env::current_exe().context("current_exe")?;
    let log = log_dir.join("echo.log");
    let mut cmd = placement.server_command(&exe);
    cmd.args(["echo-serve", "--port", "0"]).stdout(Stdio::piped()).stderr(Stdio::null()).kill_on_drop(true);
    let mut child = cmd.spawn().context("starting the echo server")?;
    let stdout = child.stdout.take().context("echo stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .context("the echo server did not print its address within 10 s")??
        .context("the echo server exited before printing its address")?;
    let addr: SocketAddr = line.strip_prefix("listening on ").context("unexpected echo output")?.parse()?;
    Ok(Server { name: "echo".into(), child, addr, log })
}

/// The `steplab` binary next to this one (target/release/steplab).
pub fn steplab_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("current_exe")?;
    let dir = exe.parent().context("the benchmark binary has no directory")?;
    let bin = dir.join("steplab");
    if !bin.is_file() {
        bail!(
            "{} not found: build it first with `cargo build --release -p steplab -p steplab-bench` \
             (the benchmark runs the real `steplab serve` processes)",
            bin.display()
        );
    }
    Ok(bin)
}

/// Starts `steplab serve <service>` with `env` and waits until it is SERVING.
pub async fn start_service(
    placement: &Placement,
    service: &str,
    name: &str,
    addr: SocketAddr,
    env: &BTreeMap<String, String>,
    log_dir: &std::path::Path,
) -> anyhow::Result<Server> {
    let bin = steplab_binary()?;
    let log = log_dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log)?;
    let mut cmd = placement.server_command(&bin);
    cmd.args(["serve", service])
        .env_clear()
        .envs(std::env::vars().filter(|(k, _)| !k.starts_with("STEPLAB_")))
        .envs(env)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .kill_on_drop(true);
    let child = cmd.spawn().with_context(|| format!("starting steplab serve {service}"))?;
    let mut server = Server { name: name.into(), child, addr, log };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            let tail = std::fs::read_to_string(&server.log).unwrap_or_default();
            bail!("steplab serve {service} exited with {status}:\n{}", last_lines(&tail, 20));
        }
        if serving(addr).await {
            return Ok(server);
        }
        if Instant::now() > deadline {
            bail!("steplab serve {service} was not SERVING on {addr} within 120 s (log: {})", server.log.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

async fn serving(addr: SocketAddr) -> bool {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://{addr}")) else { return false };
    let Ok(channel) = endpoint.connect_timeout(Duration::from_secs(1)).connect().await else { return false };
    let answer = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await;
    answer.is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
}

/// A free 127.0.0.1 port (bound, then released for the child to take).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// Resident memory in MB from /proc/<pid>/status (VmRSS).
pub fn rss_mb(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux unless told otherwise).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime+stime of a process in clock ticks (all its threads).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = s.rsplit_once(") ")?.1.split(' ').collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Busy clock ticks of the whole machine (all CPUs), from /proc/stat.
fn machine_busy() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = s.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    Some(total - v.get(3)? - v.get(4)?)
}

/// CPU use of named processes over a measured window, in % of one CPU.
pub struct CpuWindow {
    pids: Vec<(String, u32)>,
    start: Vec<Option<u64>>,
    machine: Option<u64>,
    at: Instant,
}

impl CpuWindow {
    pub fn start(pids: Vec<(String, u32)>) -> Self {
        let start = pids.iter().map(|(_, p)| cpu_ticks(*p)).collect();
        CpuWindow { pids, start, machine: machine_busy(), at: Instant::now() }
    }

    /// Each process's %, `load` (this process), `machine` (all CPUs, up to
    /// 100 per CPU) and `other` (machine minus those: PostgreSQL, other jobs).
    pub fn finish(self, hz: f64) -> serde_json::Map<String, serde_json::Value> {
        let secs = self.at.elapsed().as_secs_f64().max(1e-3);
        let pct = |ticks: u64| (ticks as f64 / hz / secs * 100.0).round();
        let mut out = serde_json::Map::new();
        let mut known = 0u64;
        for ((name, pid), start) in self.pids.iter().zip(&self.start) {
            if let (Some(a), Some(b)) = (start, cpu_ticks(*pid)) {
                known += b.saturating_sub(*a);
                out.insert(name.clone(), pct(b.saturating_sub(*a)).into());
            }
        }
        if let (Some(a), Some(b)) = (self.machine, machine_busy()) {
            let m = b.saturating_sub(a);
            out.insert("machine".into(), pct(m).into());
            out.insert("other".into(), pct(m.saturating_sub(known)).into());
        }
        out
    }
}
