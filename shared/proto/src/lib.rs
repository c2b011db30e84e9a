//! Generated Rust for the Steplab v1 contracts (`proto/steplab/...`): message
//! types, server traits and clients for the participant, content-release and
//! payments services, and the encoded descriptor set that reflection serves.
//! Kept in its own crate so editing service code never recompiles protos.
#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod codec;

include!(concat!(env!("OUT_DIR"), "/_includes.rs"));

/// Every Steplab file descriptor (with `google.type.Date` and the well-known
/// types it imports), for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("steplab_descriptor");
