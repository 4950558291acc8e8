//! The `Check` trait: reading one value (a duration, an integer in a range, a byte size, a socket
//! address) while recording a problem and falling back to the default, so that validation goes on.

use crate::config::file::ByteSize;
use crate::config::units::{parse_bytes, parse_duration, DurationKind};
use scalelab_common::problem::Problems;
use std::net::SocketAddr;
use std::time::Duration;

/// Checks of one value that record a problem and fall back to the default, so that validation
/// goes on and one run reports every problem.
pub(super) trait Check {
    fn duration(
        &mut self,
        path: &str,
        value: Option<&String>,
        kind: DurationKind,
        default: Duration,
    ) -> Duration;
    fn integer(&mut self, path: &str, value: Option<i64>, range: (i64, i64), default: i64) -> i64;
    fn bytes(&mut self, path: &str, value: Option<&ByteSize>, default: usize) -> usize;
    fn addr(&mut self, path: &str, text: &str) -> Option<SocketAddr>;
}

impl Check for Problems {
    fn duration(
        &mut self,
        path: &str,
        value: Option<&String>,
        kind: DurationKind,
        default: Duration,
    ) -> Duration {
        let Some(text) = value else { return default };
        parse_duration(text, kind).unwrap_or_else(|message| {
            self.push(path, message);
            default
        })
    }

    fn integer(&mut self, path: &str, value: Option<i64>, range: (i64, i64), default: i64) -> i64 {
        match value {
            None => default,
            Some(n) if n >= range.0 && n <= range.1 => n,
            Some(n) => {
                self.push(
                    path,
                    format!("{n} is out of range {}..={}", range.0, range.1),
                );
                default
            }
        }
    }

    fn bytes(&mut self, path: &str, value: Option<&ByteSize>, default: usize) -> usize {
        match value {
            None => default,
            Some(ByteSize::Bytes(n)) if *n > 0 => *n as usize,
            Some(ByteSize::Bytes(n)) => {
                self.push(path, format!("{n} must be greater than zero"));
                default
            }
            Some(ByteSize::Text(text)) => match parse_bytes(text) {
                Ok(n) if n > 0 => n as usize,
                Ok(_) => {
                    self.push(path, "must be greater than zero");
                    default
                }
                Err(message) => {
                    self.push(path, message);
                    default
                }
            },
        }
    }

    fn addr(&mut self, path: &str, text: &str) -> Option<SocketAddr> {
        match text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.push(
                    path,
                    format!(
                        "invalid address {text:?}; expected IP:PORT such as \"127.0.0.1:5000\""
                    ),
                );
                None
            }
        }
    }
}
