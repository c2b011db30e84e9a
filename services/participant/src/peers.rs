//! Reads from content release and payments, for the consistency check: the
//! participant service calls them with its own service token.

use crate::error::ServiceError;
use std::sync::Arc;
use steplab_platform::outbox::TokenSource;
use steplab_platform::tls::ClientTls;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::content::v1::content_release_service_client::ContentReleaseServiceClient;
use steplab_proto::steplab::payments::v1 as payments;
use steplab_proto::steplab::payments::v1::payments_service_client::PaymentsServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Request};

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

    fn authorised<T>(&self, message: T) -> Result<Request<T>, ServiceError> {
        let token = self.tokens.bearer().map_err(ServiceError::Unavailable)?;
        let mut request = Request::new(message);
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| ServiceError::Internal("service token is not ASCII".into()))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }

    /// The release state, or `None` when content release does not know the participant.
    pub async fn release(
        &self,
        participant_id: &str,
        as_of: Date,
    ) -> Result<Option<content::GetReleaseStateResponse>, ServiceError> {
        let request = self.authorised(content::GetReleaseStateRequest {
            participant_id: participant_id.to_owned(),
            as_of: Some(as_of),
        })?;
        match self.content.clone().get_release_state(request).await {
            Ok(answer) => Ok(Some(answer.into_inner())),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(ServiceError::Unavailable(format!("content release: {}", status.message()))),
        }
    }

    /// The accrual, or `None` when payments does not know the participant.
    pub async fn accrual(
        &self,
        participant_id: &str,
        as_of: Date,
    ) -> Result<Option<payments::GetAccrualResponse>, ServiceError> {
        let request = self.authorised(payments::GetAccrualRequest {
            participant_id: participant_id.to_owned(),
            as_of: Some(as_of),
        })?;
        match self.payments.clone().get_accrual(request).await {
            Ok(answer) => Ok(Some(answer.into_inner())),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(ServiceError::Unavailable(format!("payments: {}", status.message()))),
        }
    }
}
