//! `data prepare` end to end: tokenizer identity, the validation split, determinism,
//! source formats, and one clear error per kind of bad input with nothing left behind.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use common::*;
use synthscale_data::config::{DocSplit, SourceKind, TokenDtypeSpec, TokenizerSpec};
use synthscale_data::prepare::is_validation;
use synthscale_data::{
    prepare, DataDir, DataError, Mixture, MixtureSampler, PrepareOptions, PrepareOutcome,
    SamplerConfig, TextTokenizer,
};

const M: &str = "manifest.toml";

#[test]
fn gpt2_tokenizer_matches_the_reference_ids() {
    // Oracle: GPT-2's BPE encodes "Hello world" as [15496, 995] and has <|endoftext|> = 50256
    // (REFERENCE.md §6; the ids OpenAI's encoder.json assigns).
    let tok = TextTokenizer::from_file(&gpt2(), "<|endoftext|>").unwrap();
    assert_eq!(tok.encode("Hello world").unwrap(), vec![15496, 995]);
    assert_eq!(tok.eot_id(), 50256);
    assert_eq!(tok.vocab_size(), 50257);
    // The hash is of the canonical serialization: reloading what we store gives the same id.
    let again =
        TextTokenizer::from_json_bytes(tok.json().as_bytes(), Path::new("x"), "<|endoftext|>")
            .unwrap();
    assert_eq!(again.hash(), tok.hash());
}

#[test]
fn validation_documents_never_reach_the_training_stream() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c.jsonl");
    let n_docs = 300;
    write_jsonl(&corpus, 0, n_docs, 6);
    let cfg = config(
        vec![source("c", SourceKind::Natural, "d", &corpus)],
        64,
        0.1,
    );
    let out = dir.path().join("data");
    prepare(&cfg, Path::new(M), &out, &PrepareOptions::default()).unwrap();
    let data = DataDir::open(&out).unwrap();
    let tok = data.tokenizer().unwrap();

    // The split the hash prescribes (oracle: is_validation on each document's text).
    let expected_val: BTreeSet<usize> = (0..n_docs)
        .filter(|&i| is_validation(&marked_doc(i, 6), 0.1))
        .collect();
    assert!(
        expected_val.len() > 10 && expected_val.len() < 60,
        "{}",
        expected_val.len()
    );

    let val_text = tok.decode(&data.val_shard(0).to_vec()).unwrap();
    let val_seen: BTreeSet<usize> = markers(&val_text).into_iter().collect();
    assert_eq!(val_seen, expected_val);
    let train_text = tok.decode(&data.train_shard(0).to_vec()).unwrap();
    let train_all: BTreeSet<usize> = markers(&train_text).into_iter().collect();
    assert!(train_all.is_disjoint(&expected_val));
    assert_eq!(train_all.len() + val_seen.len(), n_docs);

    // Every window the sampler serves over two epochs: no validation marker anywhere.
    let windows = (data.train_shard(0).len() as u64 - 1) / 64;
    let mix = Mixture {
        weights: vec![("c".into(), 1.0)],
    };
    let cfg = SamplerConfig {
        seq_len: 64,
        batch_size: 4,
        token_budget: 2 * windows * 64,
        seed: 3,
    };
    let sampler = MixtureSampler::new(&data, &mix, cfg, Path::new(M)).unwrap();
    let mut served = BTreeSet::new();
    for batch in sampler.stream(0) {
        for row in batch.inputs.chunks(64) {
            let text = tok.decode(row).unwrap();
            for m in markers(&text) {
                assert!(
                    !expected_val.contains(&m),
                    "validation document {m} was served"
                );
                served.insert(m);
            }
        }
    }
    assert_eq!(served, train_all, "an epoch serves every training document");
}

#[test]
fn prepare_is_deterministic_and_skips_when_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.txt");
    write_jsonl(&a, 0, 60, 5);
    std::fs::write(
        &b,
        (100..140)
            .map(|i| marked_doc(i, 4))
            .collect::<Vec<_>>()
            .join("\n\n"),
    )
    .unwrap();
    let mut sb = source("b", SourceKind::Textbook, "d2", &b);
    sb.split = DocSplit::Paragraph;
    let cfg = config(
        vec![source("a", SourceKind::Natural, "d1", &a), sb],
        32,
        0.2,
    );
    let o1 = dir.path().join("o1");
    let o2 = dir.path().join("o2");
    let r1 = prepare(&cfg, Path::new(M), &o1, &PrepareOptions::default()).unwrap();
    assert!(matches!(r1, PrepareOutcome::Prepared(_)));
    prepare(&cfg, Path::new(M), &o2, &PrepareOptions::default()).unwrap();
    for f in [
        "train/a.bin",
        "val/a.bin",
        "train/b.bin",
        "val/b.bin",
        "tokenizer.json",
    ] {
        assert_eq!(
            std::fs::read(o1.join(f)).unwrap(),
            std::fs::read(o2.join(f)).unwrap(),
            "{f} differs between two runs"
        );
    }
    // 40 paragraphs became 40 documents.
    let meta = r1.meta();
    assert_eq!(
        meta.sources[1].train.documents + meta.sources[1].val.documents,
        40
    );
    // Tokens = document tokens + one end-of-text per document.
    let tok = TextTokenizer::from_file(&gpt2(), "<|endoftext|>").unwrap();
    let expect: u64 = (0..60)
        .map(|i| tok.encode(&marked_doc(i, 5)).unwrap().len() as u64 + 1)
        .sum();
    assert_eq!(
        meta.sources[0].train.tokens + meta.sources[0].val.tokens,
        expect
    );

    let again = prepare(&cfg, Path::new(M), &o1, &PrepareOptions::default()).unwrap();
    assert!(matches!(again, PrepareOutcome::UpToDate(_)));

    // Moving the whole project keeps it up to date.
    let moved = tempfile::tempdir().unwrap();
    for f in ["a.jsonl", "b.txt"] {
        std::fs::copy(dir.path().join(f), moved.path().join(f)).unwrap();
    }
    let mut cfg_moved = cfg.clone();
    cfg_moved.sources[0].path = moved.path().join("a.jsonl");
    cfg_moved.sources[1].path = moved.path().join("b.txt");
    let r = prepare(&cfg_moved, Path::new(M), &o1, &PrepareOptions::default()).unwrap();
    assert!(matches!(r, PrepareOutcome::UpToDate(_)));

    // A changed input is not silently reused: an error, then --force rebuilds.
    let thirty: Vec<_> = (500..530).map(|i| marked_doc(i, 4)).collect();
    std::fs::write(moved.path().join("b.txt"), thirty.join("\n\n")).unwrap();
    let err = prepare(&cfg_moved, Path::new(M), &o1, &PrepareOptions::default()).unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(
        std::fs::read(o1.join("train/b.bin")).unwrap(),
        std::fs::read(o2.join("train/b.bin")).unwrap()
    );
    let force = PrepareOptions {
        force: true,
        ..Default::default()
    };
    let r = prepare(&cfg_moved, Path::new(M), &o1, &force).unwrap();
    assert!(matches!(r, PrepareOutcome::Prepared(_)));
    assert_eq!(
        r.meta().sources[1].train.documents + r.meta().sources[1].val.documents,
        30
    );
    assert_eq!(
        entries(dir.path()),
        vec!["a.jsonl", "b.txt", "o1", "o2"],
        "no leftovers"
    );
}

#[test]
fn folders_gzip_and_line_splits_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    // gzip detected by magic bytes even under a .txt name.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(format!("{}\n{}\n", marked_doc(1, 5), marked_doc(2, 5)).as_bytes())
        .unwrap();
    std::fs::write(src.join("a.txt"), gz.finish().unwrap()).unwrap();
    std::fs::write(
        src.join("sub/b.txt"),
        format!("{}\n\n{}\n", marked_doc(3, 5), marked_doc(4, 5)),
    )
    .unwrap();
    std::fs::write(src.join(".hidden.txt"), "\u{0}\u{ff} not text").unwrap();
    let mut s = source("s", SourceKind::Natural, "d", &src);
    s.split = DocSplit::Line;
    let mut cfg = config(vec![s], 16, 0.0);
    cfg.validation_fraction = 0.0;
    let out = dir.path().join("o");
    let r = prepare(&cfg, Path::new(M), &out, &PrepareOptions::default()).unwrap();
    let m = &r.meta().sources[0];
    assert_eq!((m.files, m.train.documents, m.val.documents), (2, 4, 0));
    let data = DataDir::open(&out).unwrap();
    let text = data
        .tokenizer()
        .unwrap()
        .decode(&data.train_shard(0).to_vec())
        .unwrap();
    let order: Vec<usize> = markers(&text)
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(order, vec![1, 2, 3, 4]);
    assert!(
        data.meta().domains().is_empty(),
        "no held-out documents, no domain"
    );
}

#[test]
fn bpe_tokenizer_trains_to_the_requested_size_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c.jsonl");
    write_jsonl(&corpus, 0, 200, 6);
    let mut cfg = config(
        vec![source("c", SourceKind::Natural, "d", &corpus)],
        32,
        0.1,
    );
    cfg.tokenizer = TokenizerSpec::Bpe {
        vocab_size: 400,
        min_frequency: 2,
        max_train_bytes: 1 << 30,
    };
    let out = dir.path().join("o");
    prepare(&cfg, Path::new(M), &out, &PrepareOptions::default()).unwrap();
    let data = DataDir::open(&out).unwrap();
    let tok = data.tokenizer().unwrap();
    assert_eq!(tok.vocab_size(), 400);
    assert_eq!(data.meta().tokenizer.vocab_size, 400);
    // Oracle: byte-level BPE is lossless, decode(encode(x)) = x, even for unseen text.
    for text in [marked_doc(7, 3), "Ünïcödé ✓ and tabs\t".to_string()] {
        assert_eq!(tok.decode(&tok.encode(&text).unwrap()).unwrap(), text);
    }
    // A trained tokenizer compresses its own training text better than bytes do.
    let doc = marked_doc(3, 6);
    assert!(tok.encode(&doc).unwrap().len() * 2 < doc.len());
}

/// Runs `prepare` expecting an error; checks that no output and no temporary directory
/// was left next to it.
fn prepare_fails(cfg: &synthscale_data::DataConfig, parent: &Path) -> DataError {
    let before = entries(parent);
    let out = parent.join("out");
    let err = prepare(cfg, Path::new(M), &out, &PrepareOptions::default()).unwrap_err();
    assert!(!out.exists(), "no output may be left after: {err}");
    assert_eq!(
        entries(parent),
        before,
        "nothing may be left behind after: {err}"
    );
    assert!(err.is_bad_input(), "{err}");
    err
}

#[test]
fn missing_and_empty_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.jsonl");
    let cfg = config(
        vec![source("s", SourceKind::Natural, "d", &missing)],
        16,
        0.1,
    );
    let msg = prepare_fails(&cfg, dir.path()).to_string();
    assert!(
        msg.contains("data.sources[0].path") && msg.contains("nope.jsonl"),
        "{msg}"
    );

    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let cfg = config(vec![source("s", SourceKind::Natural, "d", &empty)], 16, 0.1);
    let err = prepare_fails(&cfg, dir.path());
    assert!(matches!(err, DataError::Empty { .. }), "{err}");
    assert!(err.to_string().contains("empty.txt"), "{err}");

    let empty_dir = dir.path().join("folder");
    std::fs::create_dir(&empty_dir).unwrap();
    let cfg = config(
        vec![source("s", SourceKind::Natural, "d", &empty_dir)],
        16,
        0.1,
    );
    assert!(matches!(
        prepare_fails(&cfg, dir.path()),
        DataError::Empty { .. }
    ));
}

#[test]
fn invalid_utf8_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.jsonl");
    write_jsonl(&good, 0, 50, 4);
    let bad = dir.path().join("bad.txt");
    let mut bytes = b"first line\nsecond \xff\xfe line\n".to_vec();
    bytes.extend_from_slice(marked_doc(1, 20).as_bytes());
    std::fs::write(&bad, bytes).unwrap();
    let cfg = config(
        vec![
            source("good", SourceKind::Natural, "d", &good),
            source("bad", SourceKind::Natural, "d", &bad),
        ],
        16,
        0.1,
    );
    let err = prepare_fails(&cfg, dir.path());
    match &err {
        DataError::Utf8 { path, line, offset } => {
            assert!(path.ends_with("bad.txt"));
            assert_eq!((*line, *offset), (2, 18));
        }
        other => panic!("expected a UTF-8 error, got {other}"),
    }
    // JSONL is checked line by line too.
    let badj = dir.path().join("bad.jsonl");
    std::fs::write(&badj, b"{\"text\": \"ok\"}\n{\"text\": \"\xc3\x28\"}\n").unwrap();
    let cfg = config(vec![source("j", SourceKind::Natural, "d", &badj)], 16, 0.1);
    let msg = prepare_fails(&cfg, dir.path()).to_string();
    assert!(msg.contains("bad.jsonl") && msg.contains("line 2"), "{msg}");
}

#[test]
fn jsonl_records_without_text_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.jsonl");
    std::fs::write(
        &p,
        format!(
            "{}\n{{\"id\": 2, \"body\": \"no text field\"}}\n",
            serde_json::json!({"text": marked_doc(1, 30)})
        ),
    )
    .unwrap();
    let cfg = config(vec![source("c", SourceKind::Natural, "d", &p)], 16, 0.1);
    let msg = prepare_fails(&cfg, dir.path()).to_string();
    assert!(msg.contains("c.jsonl:2") && msg.contains("`text`"), "{msg}");

    std::fs::write(&p, "{\"text\": 5}\n").unwrap();
    let msg = prepare_fails(&cfg, dir.path()).to_string();
    assert!(
        msg.contains("c.jsonl:1") && msg.contains("must be a string"),
        "{msg}"
    );

    std::fs::write(&p, "{\"text\": \"unterminated}\n").unwrap();
    let msg = prepare_fails(&cfg, dir.path()).to_string();
    assert!(
        msg.contains("c.jsonl:1") && msg.contains("invalid JSON"),
        "{msg}"
    );
}

/// A word-level tokenizer with `n` words plus the end-of-text token.
fn big_vocab_tokenizer(path: &Path, n: usize) {
    let mut vocab = serde_json::Map::new();
    vocab.insert("<|endoftext|>".into(), 0.into());
    vocab.insert("<unk>".into(), 1.into());
    for i in 0..n {
        vocab.insert(format!("w{i}"), (i + 2).into());
    }
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    std::fs::write(path, json.to_string()).unwrap();
}

#[test]
fn a_vocabulary_too_large_for_u16_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("big.json");
    big_vocab_tokenizer(&tok, 70_000);
    let corpus = dir.path().join("c.txt");
    std::fs::write(
        &corpus,
        (0..500)
            .map(|i| format!("w{} ", i * 131))
            .collect::<String>(),
    )
    .unwrap();
    let mut cfg = config(
        vec![source("c", SourceKind::Natural, "d", &corpus)],
        16,
        0.0,
    );
    cfg.tokenizer = TokenizerSpec::File { path: tok.clone() };
    cfg.token_dtype = TokenDtypeSpec::U16;
    let msg = prepare_fails(&cfg, dir.path()).to_string();
    assert!(
        msg.contains("data.token_dtype") && msg.contains("65536") && msg.contains("70002"),
        "{msg}"
    );
    // auto picks u32 and works.
    cfg.token_dtype = TokenDtypeSpec::Auto;
    let out = dir.path().join("ok");
    let r = prepare(&cfg, Path::new(M), &out, &PrepareOptions::default()).unwrap();
    assert_eq!(
        r.meta().tokenizer.dtype,
        synthscale_data::shard::TokenDtype::U32
    );
    let data = DataDir::open(&out).unwrap();
    // "w0" has id 2 (after <|endoftext|> = 0 and <unk> = 1); the shard starts with EOT.
    assert_eq!(data.train_shard(0).to_vec()[..2], [0, 2]);
    // A trained BPE asking for u16 beyond 65536 fails before any work.
    cfg.tokenizer = TokenizerSpec::Bpe {
        vocab_size: 70_000,
        min_frequency: 2,
        max_train_bytes: 1000,
    };
    cfg.token_dtype = TokenDtypeSpec::U16;
    let msg = cfg.validate(Path::new(M)).unwrap_err().to_string();
    assert!(msg.contains("data.token_dtype"), "{msg}");
}

#[test]
fn data_built_with_another_tokenizer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c.jsonl");
    write_jsonl(&corpus, 0, 80, 5);
    let cfg = config(
        vec![source("c", SourceKind::Natural, "d", &corpus)],
        16,
        0.1,
    );
    let out = dir.path().join("data");
    prepare(&cfg, Path::new(M), &out, &PrepareOptions::default()).unwrap();
    let gpt2_hash = DataDir::open(&out).unwrap().meta().tokenizer.hash.clone();

    // Another tokenizer, same output directory.
    let other = dir.path().join("other.json");
    big_vocab_tokenizer(&other, 100);
    let mut cfg2 = cfg.clone();
    cfg2.tokenizer = TokenizerSpec::File {
        path: other.clone(),
    };
    let err = prepare(&cfg2, Path::new(M), &out, &PrepareOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::TokenizerMismatch { .. }), "{err}");
    assert!(err.is_bad_input());
    // The existing data is untouched.
    assert_eq!(
        DataDir::open(&out).unwrap().meta().tokenizer.hash,
        gpt2_hash
    );

    // A consumer that expects another tokenizer is refused.
    let other_hash = TextTokenizer::from_file(&other, "<|endoftext|>")
        .unwrap()
        .hash()
        .to_string();
    let err = DataDir::open_expecting(&out, &other_hash).unwrap_err();
    assert!(matches!(err, DataError::TokenizerMismatch { .. }), "{err}");
    assert!(DataDir::open_expecting(&out, &gpt2_hash).is_ok());

    // A shard copied in from data prepared with another tokenizer is detected on open.
    let out2 = dir.path().join("data2");
    prepare(&cfg2, Path::new(M), &out2, &PrepareOptions::default()).unwrap();
    std::fs::copy(out2.join("train/c.bin"), out.join("train/c.bin")).unwrap();
    let err = DataDir::open(&out).unwrap_err();
    assert!(matches!(err, DataError::TokenizerMismatch { .. }), "{err}");
}

#[test]
fn too_little_text_for_a_sequence_or_a_validation_set_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c.txt");
    std::fs::write(&corpus, "just a few words").unwrap();
    let cfg = config(
        vec![source("c", SourceKind::Natural, "d", &corpus)],
        64,
        0.0,
    );
    let msg = prepare_fails(&cfg, dir.path()).to_string();
    assert!(
        msg.contains("data.sources[0].path") && msg.contains("seq_len + 1 = 65"),
        "{msg}"
    );

    // One big document with a held-out fraction: the hash sends it to train, none to val.
    std::fs::write(&corpus, marked_doc(1, 50)).unwrap();
    let mut cfg = config(
        vec![source("c", SourceKind::Natural, "d", &corpus)],
        16,
        0.01,
    );
    cfg.validation_fraction = 0.01;
    let err = prepare_fails(&cfg, dir.path());
    let msg = err.to_string();
    assert!(msg.contains("validation_fraction"), "{msg}");
}
