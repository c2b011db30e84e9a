//! Reads from content release and payments, for the consistency check and
//! the outlook of a dry run (validate_only): the participant service calls
//! them with its own service token.
//!
//! The check has channels (connections) of its own, separate from the outbox
//! relay's (see `steplab_platform::outbox::Relay`): a caller whose deadline
//! cuts a check short cancels the check's peer calls only, never a delivery.
//! A peer's refusal is reported as the peer's, naming it and its code, not as
//! this service's database being unavailable.

use std::sync::Arc;
use steplab_platform::error::ServiceError;
use steplab_platform::outbox::TokenSource;
use steplab_platform::tls::ClientTls;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::content::v1::content_release_service_client::ContentReleaseServiceClient;
use steplab_proto::steplab::payments::v1 as payments;
use steplab_proto::steplab::payments::v1::payments_service_client::PaymentsServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

/// Why the consistency check could not complete.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A peer answered a call of the check with an error other than NOT_FOUND.
    #[error("{peer} answered {}: {}", .status.code(), .status.message())]
    Peer { peer: &'static str, status: Status },
    /// The service token for the peers could not be had.
    #[error("no service token for the peers: {0}")]
    Token(String),
}

impl From<CheckError> for Status {
    fn from(err: CheckError) -> Self {
        match err {
            CheckError::Service(err) => err.into(),
            CheckError::Peer { peer, status } => {
                let code = status.code();
                // A busy, slow or unreachable peer: the check is worth retrying.
                let transient = matches!(
                    code,
                    Code::Unavailable
                        | Code::ResourceExhausted
                        | Code::DeadlineExceeded
                        | Code::Cancelled
                        | Code::Aborted
                );
                if transient {
                    tracing::warn!(peer, ?code, error = status.message(), "consistency check: a peer could not answer");
                    peer_unavailable(format!(
                        "{peer} answered {code:?} ({}): the check could not complete; retry shortly",
                        status.message()
                    ))
                } else {
                    tracing::error!(peer, ?code, error = status.message(), "consistency check: a peer refused a read");
                    Status::internal(format!(
                        "{peer} refused the check's read with {code:?}: the service logged the details"
                    ))
                }
            }
            CheckError::Token(problem) => {
                tracing::error!(error = %problem, "consistency check: no service token");
                peer_unavailable(
                    "the service token for content release and payments cannot be read: retry shortly".into(),
                )
            }
        }
    }
}

#[derive(Clone)]
pub struct Peers {
    content: ContentReleaseServiceClient<Channel>,
    payments: PaymentsServiceClient<Channel>,
    tokens: Arc<dyn TokenSource>,
}

impl Peers {
    /// Connects lazily: a peer that is down only fails the check that needs it.
    /// An `https://` peer is reached over TLS as `tls` says.
    pub fn new(
        content_url: &str,
        payments_url: &str,
        tls: &ClientTls,
        tokens: Arc<dyn TokenSource>,
    ) -> anyhow::Result<Self> {
        let channel = |url: &str| -> anyhow::Result<Channel> {
            Ok(tls.endpoint(url, None)?.timeout(std::time::Duration::from_secs(10)).connect_lazy())
        };
        Ok(Self {
            content: ContentReleaseServiceClient::new(channel(content_url)?),
            payments: PaymentsServiceClient::new(channel(payments_url)?),
            tokens,
        })
    }

    fn authorised<T>(&self, message: T) -> Result<Request<T>, CheckError> {
        let token = self.tokens.bearer().map_err(CheckError::Token)?;
        let mut request = Request::new(message);
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| CheckError::Token("the service token is not ASCII".into()))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }

    /// The release state, or `None` when content release does not know the participant.
    pub async fn release(
        &self,
        participant_id: &str,
        as_of: Date,
    ) -> Result<Option<content::GetReleaseStateResponse>, CheckError> {
        let request = self.authorised(content::GetReleaseStateRequest {
            participant_id: participant_id.to_owned(),
            as_of: Some(as_of),
        })?;
        match self.content.clone().get_release_state(request).await {
            Ok(answer) => Ok(Some(answer.into_inner())),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(CheckError::Peer { peer: "content release", status }),
        }
    }

    /// The accrual, or `None` when payments does not know the participant.
    pub async fn accrual(
        &self,
        participant_id: &str,
        as_of: Date,
    ) -> Result<Option<payments::GetAccrualResponse>, CheckError> {
        let request = self.authorised(payments::GetAccrualRequest {
            participant_id: participant_id.to_owned(),
            as_of: Some(as_of),
        })?;
        match self.payments.clone().get_accrual(request).await {
            Ok(answer) => Ok(Some(answer.into_inner())),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(CheckError::Peer { peer: "payments", status }),
        }
    }

    /// Content release's outlook after `commands`, changing nothing there.
    pub async fn preview_release(
        &self,
        commands: Vec<content::ReleaseCommand>,
    ) -> Result<content::PreviewCommandsResponse, CheckError> {
        let request = self.authorised(content::PreviewCommandsRequest { commands, as_of: None })?;
        match self.content.clone().preview_commands(request).await {
            Ok(answer) => Ok(answer.into_inner()),
            Err(status) => Err(CheckError::Peer { peer: crate::commands::CONTENT, status }),
        }
    }

    /// Payments' outlook after `commands`, changing nothing there.
    pub async fn preview_accrual(
        &self,
        commands: Vec<payments::AccrualCommand>,
    ) -> Result<payments::PreviewCommandsResponse, CheckError> {
        let request = self.authorised(payments::PreviewCommandsRequest { commands, as_of: None })?;
        match self.payments.clone().preview_commands(request).await {
            Ok(answer) => Ok(answer.into_inner()),
            Err(status) => Err(CheckError::Peer { peer: crate::commands::PAYMENTS, status }),
        }
    }
}

/// UNAVAILABLE with ErrorInfo `PEER_UNAVAILABLE` and a `google.rpc.RetryInfo`.
fn peer_unavailable(message: String) -> Status {
    steplab_platform::error::retry_after(
        tonic::Code::Unavailable,
        steplab_platform::error::reason::PEER_UNAVAILABLE,
        message,
        steplab_platform::error::DEFAULT_RETRY_DELAY,
    )
}
