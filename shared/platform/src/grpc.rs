//! The one shape every service's gRPC adapter has: a handler takes the
//! caller, calls the use case of the same purpose and wraps its answer. Written
//! once here, so an adapter lists only what differs between handlers.

/// Writes a service's gRPC impl from one line per handler:
/// `rpc name(Request) -> Response => use_case_method, noting field;`.
///
/// Each handler reads the caller from the request (refusing a call without
/// one), calls `self.<use case>.<method>(caller, request)` and maps its error
/// to a status. `Response { ack }` after the arrow puts what the use case
/// answers into the response's `ack` field, for use cases that answer with
/// an acknowledgement alone. `noting field` first records the participant the request
/// names in that field, so the call's audit entry names it even when the call
/// is refused. Handlers that do more than delegate go, hand-written, in the
/// closing `handwritten { ... }` block.
#[macro_export]
macro_rules! delegating_grpc_service {
    (@wrap $response:path; $answer:ident) => {{
        $answer
    }};
    (@wrap $response:path, $ack:ident; $answer:ident) => {{
        $response { $ack: Some($answer) }
    }};
    (
        impl $service:ident for $adapter:ty, calling $use_case:ident;
        $( rpc $rpc:ident($request:path) -> $response:path $({ $ack:ident })? => $method:ident $(, noting $field:ident)?; )*
        $( handwritten { $($handwritten:tt)* } )?
    ) => {
        #[::tonic::async_trait]
        impl $service for $adapter {
            $(
                async fn $rpc(
                    &self,
                    request: ::tonic::Request<$request>,
                ) -> ::std::result::Result<::tonic::Response<$response>, ::tonic::Status> {
                    $( $crate::observability::note_participant(&request.get_ref().$field); )?
                    let caller = $crate::Caller::from_request(&request)?;
                    let answer = self.$use_case.$method(caller, request.into_inner()).await?;
                    Ok(::tonic::Response::new($crate::delegating_grpc_service!(@wrap $response $(, $ack)?; answer)))
                }
            )*
            $( $($handwritten)* )?
        }
    };
}
