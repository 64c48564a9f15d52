//! TensorBoard event files: the scalars of `metrics.jsonl` in the format `tensorboard
//! --logdir` and TensorBoard's `EventAccumulator` read.
//!
//! An event file is a sequence of TFRecords (TensorFlow's `record_writer.cc`): the payload's
//! length as a little-endian u64, the masked CRC-32C of those 8 bytes, the payload, and its
//! masked CRC-32C. Each payload is an `Event` protocol buffer (tensorflow/core/util/
//! event.proto): the first carries `file_version = "brain.Event:2"`, each later one a
//! `Summary` of scalar values (summary.proto's `simple_value`) at a step. The messages are
//! declared here with prost's derive (the few fields of TensorBoard's schema this writes),
//! so no protobuf compiler is needed to build.
//!
//! Each process writes its own file, `events.out.tfevents.<seconds>.<host>.<pid>`, as
//! TensorFlow names them. A resumed run's file starts with a `SessionLog` START at the
//! first step after its checkpoint, on which TensorBoard drops the events an earlier
//! process logged from there on (its restart purge), so the curves show what
//! `metrics.jsonl` keeps.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Result, TrainError};
use crate::metrics::Metric;

/// event.proto's `Event` (the fields written here; the numbers are event.proto's, checked
/// against TensorBoard's own reader by `crates/cli/tests/tensorboard.rs`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "What", tags = "3, 5, 7")]
    pub what: Option<What>,
}

/// event.proto's `oneof what`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

/// event.proto's `SessionLog`: a `START` at step s tells TensorBoard that the run restarted
/// there, and it drops the events it holds from step s on.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionLog {
    /// `SessionStatus`: 1 = START.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// summary.proto's `Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// summary.proto's `Summary.Value`, a scalar.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
}

const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// TFRecord's masked CRC-32C: the checksum rotated right by 15 bits plus a constant, so
/// that a record holding CRCs does not checksum to itself.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let c = CRC32C.checksum(bytes);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord around `payload`.
pub fn record(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(payload.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc32c(payload).to_le_bytes());
    out
}

/// An open event file.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl EventWriter {
    /// A new event file in `dir` (created if missing) for a run resuming after step
    /// `resumed_at` (0: a fresh start).
    pub fn create(dir: &Path, resumed_at: u64) -> Result<EventWriter> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::write(dir, e))?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        let path = dir.join(format!(
            "events.out.tfevents.{}.{host}.{}",
            now() as u64,
            std::process::id()
        ));
        let file = File::create(&path).map_err(|e| TrainError::write(&path, e))?;
        let mut w = EventWriter {
            path,
            out: BufWriter::new(file),
        };
        w.write(&Event {
            wall_time: now(),
            step: 0,
            what: Some(What::FileVersion("brain.Event:2".into())),
        })?;
        w.write(&Event {
            wall_time: now(),
            step: resumed_at as i64 + 1,
            what: Some(What::SessionLog(SessionLog { status: 1 })),
        })?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, e: &Event) -> Result<()> {
        let bytes = prost::Message::encode_to_vec(e);
        self.out
            .write_all(&record(&bytes))
            .and_then(|_| self.out.flush())
            .map_err(|e| TrainError::write(&self.path, e))
    }

    /// Scalars `(tag, value)` at `step`, in one event, flushed (TensorBoard reads the file
    /// as it grows).
    pub fn scalars(&mut self, step: u64, values: &[(String, f64)]) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        self.write(&Event {
            wall_time: now(),
            step: step as i64,
            what: Some(What::Summary(Summary {
                value: values
                    .iter()
                    .map(|(tag, v)| SummaryValue {
                        tag: tag.clone(),
                        simple_value: Some(*v as f32),
                    })
                    .collect(),
            })),
        })
    }

    /// A line of `metrics.jsonl` as scalars: `train/loss`, `train/lr`, `train/grad_norm`,
    /// `train/tokens_per_s`, `train/mfu`, `train/comm_s` and `train/tokens` for a training
    /// step; `val/<domain>` (and `val/tokens`) for an evaluation.
    pub fn metric(&mut self, m: &Metric) -> Result<()> {
        let mut v: Vec<(String, f64)> = Vec::new();
        let mut put = |tag: &str, x: Option<f64>| {
            if let Some(x) = x {
                v.push((tag.to_string(), x));
            }
        };
        match (&m.eval_domain, m.val_loss) {
            (Some(domain), val) => {
                put(&format!("val/{domain}"), val);
                put("val/tokens", Some(m.tokens as f64));
            }
            (None, _) => {
                put("train/loss", m.train_loss);
                put("train/lr", m.lr);
                put("train/grad_norm", m.grad_norm);
                put("train/tokens_per_s", m.tokens_per_s);
                put("train/mfu", m.mfu);
                put("train/comm_s", m.comm_s);
                put("train/tokens", Some(m.tokens as f64));
            }
        }
        self.scalars(m.step, &v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Oracles: CRC-32C's published check value (RFC 3720, "123456789" → 0xE3069283), the
    /// mask as TensorFlow's crc32c.h writes it (shifts, not a rotate), and the record layout
    /// read back by hand.
    #[test]
    #[allow(clippy::manual_rotate)]
    fn records_carry_tensorflow_masked_crc32c() {
        assert_eq!(CRC32C.checksum(b"123456789"), 0xE306_9283);
        let c = 0xE306_9283u32;
        assert_eq!(
            masked_crc32c(b"123456789"),
            ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8)
        );
        let r = record(b"abc");
        assert_eq!(&r[..8], &3u64.to_le_bytes());
        assert_eq!(&r[8..12], &masked_crc32c(&3u64.to_le_bytes()).to_le_bytes());
        assert_eq!(&r[12..15], b"abc");
        assert_eq!(&r[15..], &masked_crc32c(b"abc").to_le_bytes());
    }

    #[test]
    fn an_event_file_decodes_back_to_its_scalars() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path(), 0).unwrap();
        w.scalars(7, &[("train/loss".into(), 2.5)]).unwrap();
        let bytes = std::fs::read(w.path()).unwrap();
        let mut at = 0;
        let mut events = Vec::new();
        while at < bytes.len() {
            let n = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            let payload = &bytes[at + 12..at + 12 + n];
            let crc = u32::from_le_bytes(bytes[at + 12 + n..at + 16 + n].try_into().unwrap());
            assert_eq!(crc, masked_crc32c(payload));
            events.push(<Event as prost::Message>::decode(payload).unwrap());
            at += 16 + n;
        }
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[0].what,
            Some(What::FileVersion("brain.Event:2".into()))
        );
        assert_eq!(
            events[1].what,
            Some(What::SessionLog(SessionLog { status: 1 }))
        );
        let Some(What::Summary(s)) = &events[2].what else {
            panic!("{:?}", events[2])
        };
        assert_eq!(events[2].step, 7);
        assert_eq!(s.value[0].tag, "train/loss");
        assert_eq!(s.value[0].simple_value, Some(2.5));
    }
}
