//! Bad input gives one clear error naming the file and field: a template with an unknown
//! placeholder, an empty source, a config field out of bounds.

use anyhow::Result;
use synthscale_synth::config::{ChunkConfig, SourceSpec};
use synthscale_synth::passages::read_passages;
use synthscale_synth::prompt::Template;
use synthscale_synth::SynthConfig;

#[test]
fn unknown_placeholder_is_named() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("t.toml");
    std::fs::write(
        &p,
        "system = \"s\"\nuser = \"Rewrite {passage} about {topic}\"\n",
    )?;
    let err = Template::load(&p, &["passage"], &["passage"]).unwrap_err();
    assert!(err.is_bad_input());
    let msg = err.to_string();
    assert!(
        msg.contains("t.toml") && msg.contains("user") && msg.contains("{topic}"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn empty_source_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("empty.jsonl");
    std::fs::write(&p, "{\"text\": \"too short\"}\n")?;
    let src = SourceSpec {
        name: "e".into(),
        path: p,
        max_passages: None,
    };
    let words = |s: &str| s.split_whitespace().count();
    let err = read_passages(&src, &ChunkConfig::default(), 1, &words).unwrap_err();
    assert!(err.is_bad_input());
    assert!(err.to_string().contains("empty source"), "{err}");
    Ok(())
}

#[test]
fn config_bounds_are_checked_at_load() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("synth.toml");
    std::fs::write(
        &p,
        "work_dir = \"w\"\n[generator]\nmodel = \"m.gguf\"\n[sampling]\ntop_p = 1.5\n\
         [[sources]]\nname = \"a\"\npath = \"a.jsonl\"\n\
         [[tasks]]\nname = \"t\"\nmethod = \"passage\"\nkind = \"textbook\"\ntemplate = \"t.toml\"\noutput = \"o.jsonl\"\n",
    )?;
    let msg = SynthConfig::load(&p).unwrap_err().to_string();
    assert!(
        msg.contains("sampling.top_p") && msg.contains("1.5"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn generator_device_must_be_cpu_or_cuda() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("synth.toml");
    std::fs::write(
        &p,
        "work_dir = \"w\"\n[generator]\nmodel = \"m.gguf\"\ndevice = \"tpu\"\n\
         [[sources]]\nname = \"a\"\npath = \"a.jsonl\"\n\
         [[tasks]]\nname = \"t\"\nmethod = \"passage\"\nkind = \"textbook\"\ntemplate = \"t.toml\"\noutput = \"o.jsonl\"\n",
    )?;
    let msg = SynthConfig::load(&p).unwrap_err().to_string();
    assert!(
        msg.contains("synth.toml") && msg.contains("generator.device") && msg.contains("tpu"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn template_cap_of_zero_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("t.toml");
    std::fs::write(
        &p,
        "system = \"s\"\nuser = \"Rewrite {passage}\"\nmax_new_tokens = 0\n",
    )?;
    let msg = Template::load(&p, &["passage"], &["passage"])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("t.toml") && msg.contains("max_new_tokens"),
        "{msg}"
    );
    Ok(())
}

/// An OpenAI-compatible generator's fields: each bad value is named with its bound.
#[test]
fn server_generator_fields_are_checked_at_load() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("synth.toml");
    let cases = [
        ("kind = \"openai\"", "generator.base_url", "API root"),
        (
            "kind = \"openai\"\nbase_url = \"localhost:8000/v1\"",
            "generator.base_url",
            "not an http",
        ),
        (
            "kind = \"openai\"\nbase_url = \"http://h/v1\"\nmax_concurrency = 0",
            "generator.max_concurrency",
            "1..=4096",
        ),
        (
            "kind = \"openai\"\nbase_url = \"http://h/v1\"\nrequest_timeout_s = 0",
            "generator.request_timeout_s",
            "positive",
        ),
        (
            "base_url = \"http://h/v1\"",
            "generator.base_url",
            "kind = \"openai\"",
        ),
        ("kind = \"vllm\"", "toml", "unknown variant"),
    ];
    for (generator, field, bound) in cases {
        std::fs::write(
            &p,
            format!(
                "work_dir = \"w\"\n[generator]\nmodel = \"m\"\n{generator}\n\
                 [[sources]]\nname = \"a\"\npath = \"a.jsonl\"\n\
                 [[tasks]]\nname = \"t\"\nmethod = \"passage\"\nkind = \"textbook\"\ntemplate = \"t.toml\"\noutput = \"o.jsonl\"\n"
            ),
        )?;
        let err = SynthConfig::load(&p).unwrap_err();
        assert!(err.is_bad_input());
        let msg = err.to_string();
        assert!(
            msg.contains("synth.toml") && msg.contains(field) && msg.contains(bound),
            "{generator}: {msg}"
        );
    }
    Ok(())
}

/// A template's `json_schema` must be JSON and needs `response_format = "json"`.
#[test]
fn template_json_schema_is_checked() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("t.toml");
    for (extra, want) in [
        (
            "json_schema = '{\"type\": \"object\"}'",
            "needs response_format",
        ),
        (
            "response_format = \"json\"\njson_schema = '{not json'",
            "not JSON",
        ),
        ("response_format = \"yaml\"", "neither"),
    ] {
        std::fs::write(
            &p,
            format!("system = \"s\"\nuser = \"{{passage}}\"\n{extra}\n"),
        )?;
        let msg = Template::load(&p, &["passage"], &["passage"])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("t.toml") && msg.contains(want),
            "{extra}: {msg}"
        );
    }
    std::fs::write(
        &p,
        "system = \"s\"\nuser = \"{passage}\"\nresponse_format = \"json\"\njson_schema = '{\"type\": \"object\"}'\n",
    )?;
    let t = Template::load(&p, &["passage"], &["passage"])?;
    assert_eq!(
        t.response_format.unwrap()["json_schema"]["schema"]["type"],
        "object"
    );
    Ok(())
}
