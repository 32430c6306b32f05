//! Error type shared by the codec, the aggregation kernels and the sketches.
use std::fmt;

/// What went wrong. `Corrupt` is about bytes handed to a decoder (a frame or column that is
/// truncated, inconsistent or fails its checksum); `Invalid` is about arguments handed to an
/// encoder or kernel (mismatched lengths, names too long, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    Corrupt(String),
    Invalid(String),
}

impl Error {
    pub fn corrupt(msg: impl Into<String>) -> Self {
        Error::Corrupt(msg.into())
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Corrupt(m) | Error::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
