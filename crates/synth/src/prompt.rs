//! Prompt templates: TOML files with a `system` and a `user` text and `{placeholder}`s,
//! checked against the placeholders a task fills, and identified by their sha256.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Result, SynthError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    /// What the template is for (not sent to the model).
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    system: String,
    user: String,
    /// The start of the model's answer, written into the prompt right after the
    /// assistant's turn opens (no placeholders); the record's text begins with it. Small
    /// generators follow a format far more reliably when its first words are given.
    #[serde(default)]
    response_prefix: String,
    /// A cap on this template's generations, below `[sampling] max_new_tokens`.
    #[serde(default)]
    max_new_tokens: Option<usize>,
    /// `json`: the answer is a JSON object, and an inference server is asked for one
    /// (`response_format`); `text` (default): free text.
    #[serde(default)]
    response_format: Option<String>,
    /// With `response_format = "json"`: a JSON Schema (as JSON text) the server constrains
    /// the answer to (`json_schema`, which vLLM, SGLang and llama.cpp read).
    #[serde(default)]
    json_schema: Option<String>,
}

/// A loaded template.
#[derive(Debug, Clone)]
pub struct Template {
    pub path: PathBuf,
    pub system: String,
    pub user: String,
    /// See the template file's `response_prefix`.
    pub response_prefix: String,
    /// See the template file's `max_new_tokens`.
    pub max_new_tokens: Option<usize>,
    /// What a server is asked for (`response_format` of the request): a JSON object, or
    /// one that matches the template's schema; None for free text.
    pub response_format: Option<serde_json::Value>,
    /// sha256 of the file's bytes, recorded in every record made with it.
    pub sha256: String,
}

/// The `{name}`s in `text` (`{{` and `}}` are literal braces).
pub fn placeholders(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, ch)) = chars.next() {
        match ch {
            '{' if chars.peek().map(|x| x.1) == Some('{') => {
                chars.next();
            }
            '}' if chars.peek().map(|x| x.1) == Some('}') => {
                chars.next();
            }
            '{' => {
                let rest = &text[i + 1..];
                let end = rest
                    .find('}')
                    .ok_or_else(|| format!("unclosed `{{` at byte {i}"))?;
                let name = &rest[..end];
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("`{{{name}}}` is not a placeholder name"));
                }
                out.push(name.to_string());
                for _ in 0..=end {
                    chars.next();
                }
            }
            '}' => return Err(format!("unmatched `}}` at byte {i} (write `}}}}`)")),
            _ => {}
        }
    }
    Ok(out)
}

fn fill(text: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(text.len() + 1024);
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let r = &rest[i..];
        if r.starts_with("{{") || r.starts_with("}}") {
            out.push_str(&r[..1]);
            rest = &r[2..];
        } else if r.starts_with('{') {
            let end = r.find('}').expect("validated");
            out.push_str(&values[&r[1..end]]);
            rest = &r[end + 1..];
        } else {
            out.push('}');
            rest = &r[1..];
        }
    }
    out.push_str(rest);
    out
}

impl Template {
    /// Loads a template whose placeholders must all be among `allowed` (and `required`
    /// must all appear).
    pub fn load(path: &Path, allowed: &[&str], required: &[&str]) -> Result<Template> {
        let bytes = std::fs::read(path)
            .map_err(|e| SynthError::missing_or_read(path, e, "prompt template"))?;
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| SynthError::field(path, "file", "not UTF-8"))?;
        let file: TemplateFile = toml::from_str(&text)
            .map_err(|e| SynthError::field(path, "toml", e.message().to_string()))?;
        let mut seen = Vec::new();
        for (field, t) in [("system", &file.system), ("user", &file.user)] {
            let names = placeholders(t).map_err(|m| SynthError::field(path, field, m))?;
            for n in names {
                if !allowed.contains(&n.as_str()) {
                    return Err(SynthError::field(
                        path,
                        field,
                        format!("unknown placeholder `{{{n}}}`; this task fills {allowed:?}"),
                    ));
                }
                seen.push(n);
            }
        }
        for r in required {
            if !seen.iter().any(|s| s == r) {
                return Err(SynthError::field(
                    path,
                    "user",
                    format!("placeholder `{{{r}}}` is required by this task"),
                ));
            }
        }
        if file.max_new_tokens == Some(0) {
            return Err(SynthError::field(
                path,
                "max_new_tokens",
                "must be at least 1",
            ));
        }
        let json = match file.response_format.as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(SynthError::field(
                    path,
                    "response_format",
                    format!("{other:?} is neither \"text\" nor \"json\""),
                ))
            }
        };
        let response_format = match (json, &file.json_schema) {
            (false, None) => None,
            (false, Some(_)) => {
                return Err(SynthError::field(
                    path,
                    "json_schema",
                    "needs response_format = \"json\"",
                ))
            }
            (true, None) => Some(serde_json::json!({"type": "json_object"})),
            (true, Some(schema)) => {
                let schema: serde_json::Value = serde_json::from_str(schema).map_err(|e| {
                    SynthError::field(path, "json_schema", format!("not JSON: {e}"))
                })?;
                Some(serde_json::json!({"type": "json_schema",
                    "json_schema": {"name": "answer", "strict": true, "schema": schema}}))
            }
        };
        Ok(Template {
            response_format,
            path: path.to_path_buf(),
            system: file.system,
            user: file.user,
            response_prefix: file.response_prefix,
            max_new_tokens: file.max_new_tokens,
            sha256: crate::sha256_hex(&bytes),
        })
    }

    /// The system and user texts with placeholders filled.
    pub fn render(&self, values: &BTreeMap<&str, String>) -> (String, String) {
        (fill(&self.system, values), fill(&self.user, values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_fill() {
        assert_eq!(
            placeholders("a {passage} {{x}} {concepts}").unwrap(),
            vec!["passage", "concepts"]
        );
        assert!(placeholders("a {pass age}").is_err());
        assert!(placeholders("a {passage").is_err());
        let mut v = BTreeMap::new();
        v.insert("passage", "P".to_string());
        assert_eq!(fill("<{passage}> {{lit}}", &v), "<P> {lit}");
    }
}
