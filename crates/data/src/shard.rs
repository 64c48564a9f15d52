//! Token shards: a 128-byte header, then little-endian u16 or u32 token ids, documents
//! each preceded by the end-of-text token; read memory-mapped.
//!
//! Header (little-endian):
//! | bytes  | field                                   |
//! |--------|-----------------------------------------|
//! | 0..8   | magic `SSTOKENS`                        |
//! | 8..12  | format version (1)                      |
//! | 12..16 | bytes per token (2 = u16, 4 = u32)      |
//! | 16..20 | vocabulary size (largest id + 1)        |
//! | 20..24 | end-of-text token id                    |
//! | 24..32 | token count                             |
//! | 32..40 | document count                          |
//! | 40..72 | sha256 of the tokenizer (raw bytes)     |
//! | 72     | source kind: 1 natural, 2 rephrased, 3 textbook; 0: not recorded (older shards) |
//! | 73..128| zero, reserved                          |
//!
//! Opening a shard reads every token once and refuses ids outside the header's vocabulary,
//! so damaged data fails here, naming the file, and not deep inside the model.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::SourceKind;
use crate::error::{DataError, Result};

pub const MAGIC: [u8; 8] = *b"SSTOKENS";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 128;

/// Width of a stored token id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenDtype {
    U16,
    U32,
}

impl TokenDtype {
    pub fn width(self) -> usize {
        match self {
            TokenDtype::U16 => 2,
            TokenDtype::U32 => 4,
        }
    }

    /// How many distinct token ids the type holds.
    pub fn capacity(self) -> u64 {
        match self {
            TokenDtype::U16 => 1 << 16,
            TokenDtype::U32 => 1 << 32,
        }
    }

    fn from_width(w: u32) -> Option<Self> {
        match w {
            2 => Some(TokenDtype::U16),
            4 => Some(TokenDtype::U32),
            _ => None,
        }
    }
}

impl std::fmt::Display for TokenDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenDtype::U16 => "u16",
            TokenDtype::U32 => "u32",
        })
    }
}

/// What a shard's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardHeader {
    pub dtype: TokenDtype,
    pub vocab_size: u32,
    pub eot_id: u32,
    pub tokens: u64,
    pub documents: u64,
    /// Hex sha256 of the tokenizer.
    pub tokenizer_hash: String,
    /// The kind of the source the tokens came from; `None` in shards written before the
    /// header recorded it.
    pub kind: Option<SourceKind>,
}

fn kind_code(kind: Option<SourceKind>) -> u8 {
    match kind {
        None => 0,
        Some(SourceKind::Natural) => 1,
        Some(SourceKind::Rephrased) => 2,
        Some(SourceKind::Textbook) => 3,
    }
}

impl ShardHeader {
    fn encode(&self) -> Result<[u8; HEADER_LEN]> {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&(self.dtype.width() as u32).to_le_bytes());
        h[16..20].copy_from_slice(&self.vocab_size.to_le_bytes());
        h[20..24].copy_from_slice(&self.eot_id.to_le_bytes());
        h[24..32].copy_from_slice(&self.tokens.to_le_bytes());
        h[32..40].copy_from_slice(&self.documents.to_le_bytes());
        let hash = hex_to_bytes(&self.tokenizer_hash).ok_or_else(|| {
            DataError::Internal(format!("bad tokenizer hash {:?}", self.tokenizer_hash))
        })?;
        h[40..72].copy_from_slice(&hash);
        h[72] = kind_code(self.kind);
        Ok(h)
    }

    fn decode(h: &[u8], path: &Path) -> Result<Self> {
        let corrupt = |message: String| DataError::Corrupt {
            path: path.to_path_buf(),
            message,
        };
        if h.len() < HEADER_LEN || h[0..8] != MAGIC {
            return Err(corrupt("not a synthscale token shard (bad magic)".into()));
        }
        let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap());
        let u64_at = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().unwrap());
        let version = u32_at(8);
        if version != VERSION {
            return Err(corrupt(format!(
                "shard format version {version}; this build reads version {VERSION}"
            )));
        }
        let width = u32_at(12);
        let dtype = TokenDtype::from_width(width)
            .ok_or_else(|| corrupt(format!("token width {width} is neither 2 nor 4")))?;
        let kind = match h[72] {
            0 => None,
            1 => Some(SourceKind::Natural),
            2 => Some(SourceKind::Rephrased),
            3 => Some(SourceKind::Textbook),
            k => {
                return Err(corrupt(format!(
                    "header byte 72 (source kind) is {k}, not 0..=3"
                )))
            }
        };
        let header = ShardHeader {
            dtype,
            vocab_size: u32_at(16),
            eot_id: u32_at(20),
            tokens: u64_at(24),
            documents: u64_at(32),
            tokenizer_hash: h[40..72].iter().map(|b| format!("{b:02x}")).collect(),
            kind,
        };
        if header.vocab_size == 0 || u64::from(header.vocab_size) > dtype.capacity() {
            return Err(corrupt(format!(
                "header field `vocab_size` is {}, outside 1..={} for {dtype} token ids",
                header.vocab_size,
                dtype.capacity()
            )));
        }
        if header.eot_id >= header.vocab_size {
            return Err(corrupt(format!(
                "header field `eot_id` is {}, not below the header's vocab_size {}",
                header.eot_id, header.vocab_size
            )));
        }
        Ok(header)
    }
}

fn hex_to_bytes(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Streams documents into a new shard; the header is completed by [`ShardWriter::finish`].
pub struct ShardWriter {
    out: BufWriter<File>,
    path: PathBuf,
    header: ShardHeader,
}

impl ShardWriter {
    pub fn create(
        path: &Path,
        dtype: TokenDtype,
        vocab_size: u32,
        eot_id: u32,
        tokenizer_hash: &str,
        kind: SourceKind,
    ) -> Result<Self> {
        if u64::from(vocab_size) > dtype.capacity() {
            return Err(DataError::Internal(format!(
                "vocabulary of {vocab_size} does not fit {dtype}"
            )));
        }
        let header = ShardHeader {
            dtype,
            vocab_size,
            eot_id,
            tokens: 0,
            documents: 0,
            tokenizer_hash: tokenizer_hash.to_string(),
            kind: Some(kind),
        };
        let file = File::create(path).map_err(|e| DataError::write(path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&header.encode()?)
            .map_err(|e| DataError::write(path, e))?;
        Ok(ShardWriter {
            out,
            path: path.to_path_buf(),
            header,
        })
    }

    /// Appends the end-of-text token and then the document's tokens.
    pub fn write_document(&mut self, tokens: &[u32]) -> Result<()> {
        let vocab = self.header.vocab_size;
        if let Some(bad) = tokens.iter().find(|&&t| t >= vocab) {
            return Err(DataError::Internal(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        let mut buf = Vec::with_capacity((tokens.len() + 1) * self.header.dtype.width());
        for &t in std::iter::once(&self.header.eot_id).chain(tokens) {
            match self.header.dtype {
                TokenDtype::U16 => buf.extend_from_slice(&(t as u16).to_le_bytes()),
                TokenDtype::U32 => buf.extend_from_slice(&t.to_le_bytes()),
            }
        }
        self.out
            .write_all(&buf)
            .map_err(|e| DataError::write(&self.path, e))?;
        self.header.tokens += tokens.len() as u64 + 1;
        self.header.documents += 1;
        Ok(())
    }

    /// Writes the final header and syncs the file to disk.
    pub fn finish(mut self) -> Result<ShardHeader> {
        let write_error = |e| DataError::write(&self.path, e);
        self.out.flush().map_err(write_error)?;
        let header = self.header.encode()?;
        let file = self.out.get_mut();
        file.seek(SeekFrom::Start(0)).map_err(write_error)?;
        file.write_all(&header).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        Ok(self.header)
    }
}

/// Tokens checked per task of the one pass [`Shard::open`] makes.
const CHECK_CHUNK: usize = 1 << 20;

/// One pass over a shard's tokens: every id must be below the header's vocabulary, the
/// first token must be the end-of-text token that opens a document, and there must be at
/// least one end-of-text token per document.
fn check_tokens(body: &[u8], h: &ShardHeader, path: &Path) -> Result<()> {
    let w = h.dtype.width();
    let id_at = |c: &[u8]| match h.dtype {
        TokenDtype::U16 => u32::from(u16::from_le_bytes([c[0], c[1]])),
        TokenDtype::U32 => u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
    };
    // (first id outside the vocabulary with its index, end-of-text tokens) per chunk.
    let (bad, eots) = body
        .par_chunks(CHECK_CHUNK * w)
        .enumerate()
        .map(|(ci, chunk)| {
            let mut bad = None;
            let mut eots = 0u64;
            for (i, c) in chunk.chunks_exact(w).enumerate() {
                let id = id_at(c);
                if id >= h.vocab_size && bad.is_none() {
                    bad = Some(((ci * CHECK_CHUNK + i) as u64, id));
                }
                eots += u64::from(id == h.eot_id);
            }
            (bad, eots)
        })
        .reduce(
            || (None, 0),
            |(a, x), (b, y)| {
                let first = match (a, b) {
                    (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
                    (a, b) => a.or(b),
                };
                (first, x + y)
            },
        );
    let corrupt = |message: String| DataError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    if let Some((i, id)) = bad {
        return Err(corrupt(format!(
            "token {i} is id {id}, outside the vocabulary of the header's field `vocab_size` \
             = {} (the shard is damaged; prepare the data again)",
            h.vocab_size
        )));
    }
    if h.tokens > 0 && id_at(&body[..w]) != h.eot_id {
        return Err(corrupt(format!(
            "the first token is id {}, not the end-of-text id (header field `eot_id` = {}) \
             that opens every document (the shard is damaged; prepare the data again)",
            id_at(&body[..w]),
            h.eot_id
        )));
    }
    if eots < h.documents {
        return Err(corrupt(format!(
            "{eots} end-of-text tokens for the header's field `documents` = {} (one opens \
             every document; the shard is damaged; prepare the data again)",
            h.documents
        )));
    }
    Ok(())
}

/// A memory-mapped shard.
pub struct Shard {
    map: Mmap,
    header: ShardHeader,
    path: PathBuf,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("path", &self.path)
            .field("header", &self.header)
            .finish()
    }
}

impl Shard {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| DataError::read(path, e))?;
        // SAFETY: shards are written once into a temporary directory and renamed into place;
        // nothing in synthscale modifies them afterwards. A shard truncated by another
        // process while mapped would fault, which is the usual caveat of memory maps.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| DataError::read(path, e))?;
        let header = ShardHeader::decode(&map, path)?;
        let expected = HEADER_LEN as u64 + header.tokens * header.dtype.width() as u64;
        if map.len() as u64 != expected {
            return Err(DataError::Corrupt {
                path: path.to_path_buf(),
                message: format!(
                    "{} bytes on disk, but the header's {} tokens need {expected}",
                    map.len(),
                    header.tokens
                ),
            });
        }
        check_tokens(&map[HEADER_LEN..], &header, path)?;
        Ok(Shard {
            map,
            header,
            path: path.to_path_buf(),
        })
    }

    pub fn header(&self) -> &ShardHeader {
        &self.header
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.header.tokens as usize
    }

    pub fn is_empty(&self) -> bool {
        self.header.tokens == 0
    }

    /// Copies tokens `start .. start + out.len()` into `out`.
    ///
    /// Panics if the range is out of bounds (callers compute ranges from `len`).
    pub fn read_into(&self, start: usize, out: &mut [u32]) {
        let w = self.header.dtype.width();
        let bytes = &self.map[HEADER_LEN + start * w..HEADER_LEN + (start + out.len()) * w];
        match self.header.dtype {
            TokenDtype::U16 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = u16::from_le_bytes([c[0], c[1]]) as u32;
                }
            }
            TokenDtype::U32 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
        }
    }

    /// All tokens, copied out.
    pub fn to_vec(&self) -> Vec<u32> {
        let mut v = vec![0; self.len()];
        self.read_into(0, &mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn round_trip_u16_and_u32() {
        let dir = tempfile::tempdir().unwrap();
        for (dtype, vocab) in [(TokenDtype::U16, 65536), (TokenDtype::U32, 100_000)] {
            let p = dir.path().join(format!("{dtype}.bin"));
            let mut w =
                ShardWriter::create(&p, dtype, vocab, 7, HASH, SourceKind::Textbook).unwrap();
            w.write_document(&[1, 2, 3]).unwrap();
            w.write_document(&[vocab - 1]).unwrap();
            let h = w.finish().unwrap();
            assert_eq!((h.tokens, h.documents), (6, 2));
            let s = Shard::open(&p).unwrap();
            assert_eq!(s.header(), &h);
            assert_eq!(s.header().tokenizer_hash, HASH);
            assert_eq!(s.header().kind, Some(SourceKind::Textbook));
            assert_eq!(s.to_vec(), vec![7, 1, 2, 3, 7, vocab - 1]);
            let mut mid = [0u32; 2];
            s.read_into(2, &mut mid);
            assert_eq!(mid, [2, 3]);
        }
    }

    #[test]
    fn truncated_and_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        let mut w =
            ShardWriter::create(&p, TokenDtype::U16, 100, 0, HASH, SourceKind::Natural).unwrap();
        w.write_document(&[1, 2, 3]).unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
        let err = Shard::open(&p).unwrap_err().to_string();
        assert!(err.contains("need"), "{err}");
        std::fs::write(&p, b"hello world, not a shard at all").unwrap();
        assert!(Shard::open(&p).unwrap_err().to_string().contains("magic"));
    }

    #[test]
    fn ids_outside_the_vocabulary_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        let mut w =
            ShardWriter::create(&p, TokenDtype::U16, 100, 0, HASH, SourceKind::Natural).unwrap();
        assert!(w.write_document(&[100]).is_err());
        assert!(
            ShardWriter::create(&p, TokenDtype::U16, 70_000, 0, HASH, SourceKind::Natural).is_err()
        );
    }

    #[test]
    fn token_ids_outside_the_vocabulary_are_refused_when_a_shard_is_opened() {
        // The reproduction of issue 12: ids of 0xFFFF in a shard of a 100-token vocabulary
        // used to reach candle's index-select; opening the shard now names file and field.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        let mut w =
            ShardWriter::create(&p, TokenDtype::U16, 100, 0, HASH, SourceKind::Natural).unwrap();
        w.write_document(&[1, 2, 3, 4]).unwrap();
        w.finish().unwrap();
        let good = std::fs::read(&p).unwrap();
        let mut bytes = good.clone();
        bytes[HEADER_LEN + 2 * 3..HEADER_LEN + 2 * 4].copy_from_slice(&[0xFF, 0xFF]);
        std::fs::write(&p, &bytes).unwrap();
        let err = Shard::open(&p).unwrap_err();
        assert!(err.is_bad_input());
        let msg = err.to_string();
        assert!(
            msg.contains("a.bin")
                && msg.contains("token 3 is id 65535")
                && msg.contains("vocab_size"),
            "{msg}"
        );
        // A document start overwritten: the first token is no longer the end-of-text id.
        let mut bytes = good.clone();
        bytes[HEADER_LEN..HEADER_LEN + 2].copy_from_slice(&[5, 0]);
        std::fs::write(&p, &bytes).unwrap();
        let msg = Shard::open(&p).unwrap_err().to_string();
        assert!(msg.contains("eot_id"), "{msg}");
        // A header whose end-of-text id lies outside its vocabulary, or an unknown kind.
        let mut bytes = good.clone();
        bytes[20..24].copy_from_slice(&200u32.to_le_bytes());
        std::fs::write(&p, &bytes).unwrap();
        let msg = Shard::open(&p).unwrap_err().to_string();
        assert!(msg.contains("`eot_id` is 200"), "{msg}");
        let mut bytes = good;
        bytes[72] = 9;
        std::fs::write(&p, &bytes).unwrap();
        let msg = Shard::open(&p).unwrap_err().to_string();
        assert!(msg.contains("source kind"), "{msg}");
    }
}
