//! `synthscale export` read by Hugging Face transformers (the oracle): a trained tiny run's
//! export loads with `AutoModelForCausalLM` and `AutoTokenizer`; the model's loss on the
//! run's validation windows equals the last validation loss metrics.jsonl logged; the
//! tokenizer starts each text with the end-of-text token the model was trained with and
//! batch-pads two texts of different lengths, each text's loss in the padded batch equal
//! to its loss alone.
//!
//! Needs `SYNTHSCALE_HF_PYTHON`, a Python with torch and transformers (`.ci/run` makes one).
//! Without it the test says so and passes, unless `SYNTHSCALE_REQUIRE_TRANSFORMERS=1` (CI)
//! makes it fail.

mod common;

use common::bin;

use std::process::Command;

use serde_json::Value;

fn python() -> Option<String> {
    let p = std::env::var("SYNTHSCALE_HF_PYTHON").ok();
    let ok = p.as_ref().is_some_and(|p| {
        Command::new(p)
            .args(["-c", "import torch, transformers"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        if std::env::var("SYNTHSCALE_REQUIRE_TRANSFORMERS").as_deref() == Ok("1") {
            panic!("SYNTHSCALE_REQUIRE_TRANSFORMERS=1 but SYNTHSCALE_HF_PYTHON has no torch and transformers");
        }
        eprintln!("skipped: no SYNTHSCALE_HF_PYTHON with torch and transformers");
        return None;
    }
    p
}

const SCRIPT: &str = r#"
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
hf, tokens_file, seq_len, max_seqs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
tok = AutoTokenizer.from_pretrained(hf)
out = {"bos": tok.bos_token_id, "eos": tok.eos_token_id, "pad": tok.pad_token_id}
# The evaluator's windows: consecutive, non-overlapping, seq_len + 1 tokens from the start.
val = json.load(open(tokens_file))
n = min((len(val) - 1) // seq_len, max_seqs)
losses = []
with torch.no_grad():
    for r in range(n):
        w = torch.tensor(val[r * seq_len : r * seq_len + seq_len + 1]).unsqueeze(0)
        logits = model(w[:, :-1]).logits
        losses.append(torch.nn.functional.cross_entropy(logits[0], w[0, 1:]).item())
    out["val_loss"] = sum(losses) / len(losses)
    out["windows"] = n
    texts = ["the river carried small boats past a quiet town", "people made bread"]
    batch = tok(texts, padding=True, return_tensors="pt")
    out["first_ids"] = batch["input_ids"][:, 0].tolist()
    out["mask_sums"] = batch["attention_mask"].sum(dim=1).tolist()
    def loss_of(ids, mask):
        labels = ids.masked_fill(mask == 0, -100)
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss.item()
    out["padded"] = [loss_of(batch["input_ids"][i:i+1], batch["attention_mask"][i:i+1]) for i in range(2)]
    alone = [tok(t, return_tensors="pt") for t in texts]
    out["alone"] = [loss_of(a["input_ids"], a["attention_mask"]) for a in alone]
    # Both rows through the model at once, as a batch: each row's loss as it is alone.
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    rows = []
    for i in range(2):
        m = int(batch["attention_mask"][i].sum())
        ids = batch["input_ids"][i]
        rows.append(torch.nn.functional.cross_entropy(logits[i, : m - 1], ids[1:m]).item())
    out["batched"] = rows
print(json.dumps(out))
"#;

#[test]
fn transformers_loads_the_export_and_reproduces_its_losses() {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = common::prepare_markov_data(d, common::WORDS, 300);
    let cfg = d.join("run.toml");
    std::fs::write(
        &cfg,
        "seed = 3\n[model]\nd_model = 32\nn_layers = 2\nn_heads = 2\n\
         [data]\ndir = \"data\"\nweights = { c = 1.0 }\ntoken_budget = 25600\n\
         [optim]\nlr = 3e-3\nbatch_tokens = 256\nmicro_batch_size = 4\nwarmup_steps = 10\n\
         [eval]\ninterval = 50\nmax_tokens = 512\nbatch_size = 8\n",
    )
    .unwrap();
    let run = d.join("run");
    let o = bin()
        .current_dir(d)
        .args(["train", "--config", "run.toml", "--run-dir", "run"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let hf = d.join("hf");
    let o = bin()
        .current_dir(d)
        .args(["export", "run", "-o", "hf"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let dd = synthscale_data::DataDir::open(&data).unwrap();
    let domain = "web";
    let val = dd.validation_tokens(domain).unwrap();
    let tokens_file = d.join("val.json");
    std::fs::write(&tokens_file, serde_json::to_string(&val).unwrap()).unwrap();
    let seq_len = dd.meta().seq_len;
    let max_seqs = 512 / seq_len;
    let o = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(&hf)
        .arg(&tokens_file)
        .arg(seq_len.to_string())
        .arg(max_seqs.to_string())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: Value = serde_json::from_slice(&o.stdout).unwrap();

    let eot = dd.meta().tokenizer.eot_id as u64;
    for k in ["bos", "eos", "pad"] {
        assert_eq!(got[k], eot, "{k}: {got}");
    }
    // The last evaluation metrics.jsonl logged for the domain.
    let logged = common::metrics(&run)
        .into_iter()
        .rev()
        .find(|m| m["eval_domain"] == domain && m.get("val_loss").is_some())
        .unwrap()["val_loss"]
        .as_f64()
        .unwrap();
    let hf_loss = got["val_loss"].as_f64().unwrap();
    eprintln!(
        "validation loss: transformers {hf_loss}, logged {logged}; per text padded {}, batched {}, alone {}",
        got["padded"], got["batched"], got["alone"]
    );
    assert!(got["windows"].as_u64().unwrap() >= 1);
    assert!(
        (hf_loss - logged).abs() < 1e-4,
        "transformers {hf_loss} against the logged {logged}"
    );
    // Every text starts with the document-start token; padding does not change a loss.
    assert_eq!(got["first_ids"], serde_json::json!([eot, eot]));
    let m = got["mask_sums"].as_array().unwrap();
    assert!(m[0].as_u64() > m[1].as_u64(), "{got}");
    for key in ["padded", "batched"] {
        for i in 0..2 {
            let a = got[key][i].as_f64().unwrap();
            let b = got["alone"][i].as_f64().unwrap();
            assert!((a - b).abs() < 1e-5, "{key} {i}: {a} against {b} alone");
        }
    }
}
