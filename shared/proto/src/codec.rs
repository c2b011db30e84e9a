//! The codec of every generated service and client: tonic-prost's, except
//! that a body which is not valid protobuf for the method (a string field
//! that is not UTF-8, a truncated varint, a wrong wire type, nesting past
//! prost's recursion limit) is INVALID_ARGUMENT, as a malformed request is
//! everywhere else (CONTRACT.md, Errors). tonic-prost answers INTERNAL, which
//! blames the server, counts the call as a server fault in the metrics and
//! tells well-behaved clients nothing they can fix.
//!
//! Clients generated with it decode answers the same way: an answer that is
//! not valid protobuf (never made by our own encoder) is INVALID_ARGUMENT
//! there too, with the same message saying what could not be decoded.

use std::marker::PhantomData;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};

/// [`ProstCodec`] with malformed messages mapped to INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct StrictCodec<T, U> {
    inner: ProstCodec<T, U>,
}

impl<T, U> Default for StrictCodec<T, U> {
    fn default() -> Self {
        Self { inner: ProstCodec::default() }
    }
}

impl<T, U> Codec for StrictCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.inner.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder { _message: PhantomData, buffer_settings: BufferSettings::default() }
    }
}

/// Decodes `U` with prost; a decode error is the sender's fault.
#[derive(Debug, Clone)]
pub struct StrictDecoder<U> {
    _message: PhantomData<U>,
    buffer_settings: BufferSettings,
}

impl<U: prost::Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| malformed(&e))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.buffer_settings
    }
}

/// prost's error names the field path and what was wrong, e.g.
/// `RegisterEctRequest.name: invalid string value: data is not UTF-8 encoded`.
fn malformed(error: &prost::DecodeError) -> Status {
    Status::invalid_argument(format!(
        "malformed message: the body is not valid protobuf for this method ({error}); encode it from the service's .proto"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decode_error_is_invalid_argument_naming_the_problem() {
        // Field 1 (varint) whose varint never ends.
        let truncated = <prost_types::Timestamp as prost::Message>::decode(&[0x08u8, 0x80][..]).expect_err("truncated");
        let status = malformed(&truncated);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("buffer underflow") || status.message().contains("varint"),
            "{}",
            status.message()
        );
    }
}
