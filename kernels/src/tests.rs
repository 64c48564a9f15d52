//! The kernel table against the sources: every `__global__` function is listed once, each
//! names a CPU oracle that exists in the workspace, and each file documents both. Runs
//! without CUDA.

use super::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every `.cu` file, by module name.
const SOURCES: &[(&str, &str)] = &[
    ("adamw", include_str!("adamw.cu")),
    ("attention", include_str!("attention.cu")),
    ("cross_entropy", include_str!("cross_entropy.cu")),
    ("embedding", include_str!("embedding.cu")),
    ("rms_norm", include_str!("rms_norm.cu")),
    ("rope", include_str!("rope.cu")),
    ("swiglu", include_str!("swiglu.cu")),
];

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The source without `//` comments.
fn code(src: &str) -> String {
    src.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Names of the `__global__` functions in a CUDA source: the identifier before the first
/// `(` after `__global__`, skipping `__launch_bounds__(…)`.
fn global_functions(src: &str) -> Vec<String> {
    let code = code(src);
    let mut out = Vec::new();
    for (at, _) in code.match_indices("__global__") {
        let mut rest = &code[at + "__global__".len()..];
        if let Some(lb) = rest.find("__launch_bounds__") {
            if lb < rest.find('{').unwrap_or(usize::MAX) {
                let close = rest[lb..].find(')').expect("__launch_bounds__ closes") + lb;
                rest = &rest[close + 1..];
            }
        }
        let head = &rest[..rest.find('(').expect("a parameter list")];
        let name: String = head
            .trim_end()
            .chars()
            .rev()
            .take_while(|&c| is_ident(c))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        assert!(!name.is_empty(), "no name after __global__ in {head:?}");
        out.push(name);
    }
    out
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_parser_finds_plain_and_launch_bounded_kernels() {
    let src = "// __global__ void commented(int)\nextern \"C\" __global__ void a_b(int x) {}\n\
               extern \"C\" __global__ void __launch_bounds__(128, 2)\n    c9(float* y) {}";
    assert_eq!(global_functions(src), ["a_b", "c9"]);
}

#[test]
fn every_cu_file_is_a_module_with_sources_here() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(root().join("kernels/src"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "cu").then(|| p.file_stem().unwrap().to_string_lossy().into())
        })
        .collect();
    let listed: BTreeSet<String> = MODULES.iter().map(|s| s.to_string()).collect();
    let tested: BTreeSet<String> = SOURCES.iter().map(|(m, _)| m.to_string()).collect();
    assert_eq!(on_disk, listed, "MODULES must list every src/*.cu");
    assert_eq!(on_disk, tested, "SOURCES here must include every src/*.cu");
}

#[test]
fn every_global_function_is_in_the_table_exactly_once() {
    let mut found = BTreeSet::new();
    for (module, src) in SOURCES {
        for f in global_functions(src) {
            let entries: Vec<_> = KERNELS.iter().filter(|k| k.function == f).collect();
            assert_eq!(
                entries.len(),
                1,
                "{module}.cu: {f} must be in KERNELS exactly once"
            );
            assert_eq!(entries[0].module, *module, "{f} is defined in {module}.cu");
            assert!(found.insert(f.clone()), "{f} is defined twice");
        }
    }
    for k in KERNELS {
        assert!(
            found.contains(k.function),
            "KERNELS lists {} but no {}.cu defines it",
            k.function,
            k.module
        );
    }
}

#[test]
fn every_kernel_documents_itself_and_its_file_names_the_oracle() {
    for k in KERNELS {
        let src = SOURCES.iter().find(|(m, _)| *m == k.module).unwrap().1;
        // The signature comment above the kernel names the function.
        assert!(
            src.lines()
                .any(|l| l.trim_start().starts_with("//") && l.contains(k.function)),
            "{}.cu has no comment naming {}",
            k.module,
            k.function
        );
        let opening: String = src
            .lines()
            .take_while(|l| l.starts_with("//"))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            opening.contains("CPU reference") && opening.contains("Tolerances"),
            "{}.cu must open with its CPU reference and tolerances",
            k.module
        );
        let path = k.cpu_reference.split_whitespace().next().unwrap();
        assert!(
            opening.contains(path),
            "{}.cu's opening comment must name {path}",
            k.module
        );
    }
}

/// The Rust text of `crate::module`: `<crate>/src/<module>.rs` and every `.rs` file under
/// `<crate>/src/<module>/` (ops.rs may become a directory).
fn module_text(krate: &str, module: &str) -> String {
    let dir = match krate {
        "synthscale_model" => root().join("crates/model/src"),
        "synthscale_train" => root().join("crates/train/src"),
        other => panic!("a CPU reference in an unknown crate {other}"),
    };
    let mut files = Vec::new();
    let single = dir.join(format!("{module}.rs"));
    if single.is_file() {
        files.push(single);
    }
    let mut stack = vec![dir.join(module)];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    assert!(!files.is_empty(), "no source for {krate}::{module}");
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

fn has_fn(text: &str, name: &str) -> bool {
    [format!("fn {name}("), format!("fn {name}<")]
        .iter()
        .any(|p| text.contains(p.as_str()))
}

fn has_type(text: &str, name: &str) -> bool {
    [
        format!("struct {name} "),
        format!("struct {name};"),
        format!("struct {name}<"),
    ]
    .iter()
    .any(|p| text.contains(p.as_str()))
}

/// Whether some `impl … for Type {` or `impl Type {` block defines `fn method`.
fn has_method(text: &str, ty: &str, method: &str) -> bool {
    let mut found = false;
    for opener in [format!("for {ty} {{"), format!("impl {ty} {{")] {
        for (at, _) in text.match_indices(opener.as_str()) {
            let body = &text[at..];
            let end = body[1..].find("\nimpl").map_or(body.len(), |e| e + 1);
            found |= has_fn(&body[..end], method);
        }
    }
    found
}

#[test]
fn every_cpu_reference_exists() {
    for k in KERNELS {
        let r = k.cpu_reference;
        let path = r.split_whitespace().next().unwrap();
        let segs: Vec<&str> = path.split("::").collect();
        assert!(
            segs.len() >= 3,
            "{}: {r} is not crate::module::item",
            k.function
        );
        let text = module_text(segs[0], segs[1]);
        let (item, types) = segs[2..].split_last().unwrap();
        assert!(
            has_fn(&text, item),
            "{}: no fn {item} in {path}",
            k.function
        );
        for ty in types {
            assert!(
                has_type(&text, ty),
                "{}: no struct {ty} in {path}",
                k.function
            );
        }
        // `(Type::method …)`: that method exists in an impl block of that type.
        if let Some(paren) = r.find('(') {
            for word in r[paren + 1..].split(|c: char| !(is_ident(c) || c == ':')) {
                if let Some((ty, method)) = word.split_once("::") {
                    assert!(
                        has_type(&text, ty) && has_method(&text, ty, method),
                        "{}: no {ty}::{method} in {}::{}",
                        k.function,
                        segs[0],
                        segs[1]
                    );
                }
            }
        }
    }
}

#[test]
fn the_reference_check_rejects_what_is_not_there() {
    let text =
        "struct A;\nimpl Op for A {\n    fn cpu_fwd(&self) {}\n}\nimpl B {\n    fn other() {}\n}\n";
    assert!(has_method(text, "A", "cpu_fwd"));
    assert!(!has_method(text, "A", "other"));
    assert!(!has_method(text, "C", "cpu_fwd"));
    assert!(has_type(text, "A") && !has_type(text, "B"));
}

#[test]
fn attention_shared_memory_sizes_match_the_source() {
    let src = SOURCES.iter().find(|(m, _)| *m == "attention").unwrap().1;
    for hd in [64, 128] {
        let fwd = flash_attn_fwd_shared_bytes(hd).unwrap();
        let bwd = flash_attn_bwd_shared_bytes(hd).unwrap();
        assert!(src.contains(&format!("att_fwd_smem<{hd}>() == {fwd}")));
        assert!(src.contains(&format!("att_bwd_smem<{hd}>() == {bwd}")));
        // The size the .cu's formula gives, from its tile constants.
        let (br, bc, pb, pf) = (64, 64, 8, 4);
        assert_eq!(
            fwd as usize,
            3 * br * (hd + pb) * 2
                + br * (bc + pf) * 4
                + br * (bc + pb) * 2
                + br * (hd + pf) * 4
                + 2 * br * 4
        );
        assert_eq!(
            bwd as usize,
            4 * bc * (hd + pb) * 2 + 2 * bc * (br + pf) * 4 + 2 * bc * (br + pb) * 2 + 2 * br * 4
        );
        for (name, value) in [
            ("ATT_BR", br),
            ("ATT_BC", bc),
            ("ATT_PAD_BF16", pb),
            ("ATT_PAD_F32", pf),
        ] {
            assert!(
                src.contains(&format!("constexpr int {name} = {value};")),
                "{name}"
            );
        }
        assert_eq!(ATTENTION_TILE as usize, br);
        assert!(src.contains(&format!("flash_attn_fwd_bf16_hd{hd}(")));
        assert!(src.contains(&format!("flash_attn_bwd_bf16_hd{hd}(")));
    }
    assert_eq!(flash_attn_fwd_shared_bytes(96), None);
}

#[cfg(feature = "cuda")]
#[test]
fn every_kernel_is_an_entry_of_its_ptx() {
    for m in MODULES {
        assert!(ptx(m).is_some_and(|p| p.contains(".entry")), "{m}");
    }
    for k in KERNELS {
        let p = ptx(k.module).unwrap();
        assert!(
            p.contains(&format!(".entry {}(", k.function)),
            "{} is not an entry of {}.ptx",
            k.function,
            k.module
        );
    }
}
