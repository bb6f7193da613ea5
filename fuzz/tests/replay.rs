//! Runs every fuzz target's checks over its stored inputs: the seeds (`seeds/<target>/`) and the
//! inputs that once failed (`regressions/<target>/`). Plain `cargo test`, stable Rust, no libFuzzer:
//! this is what the test suite runs on every change; `scripts/fuzz` runs the fuzzer itself.

use std::path::Path;

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 7] = [
    ("arn", gpudev_fuzz::arn),
    ("authorization", gpudev_fuzz::authorization),
    ("submit_request", gpudev_fuzz::submit_request),
    ("image_ref", gpudev_fuzz::image_ref),
    ("env_vars", gpudev_fuzz::env_vars),
    ("agent_token", gpudev_fuzz::agent_token),
    ("agent_report", gpudev_fuzz::agent_report),
];

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn every_target_passes_its_seeds_and_regressions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (target, check) in TARGETS {
        let seeds = inputs(&root.join("seeds").join(target));
        assert!(seeds.len() >= 3, "{target}: only {} seeds", seeds.len());
        let regressions = inputs(&root.join("regressions").join(target));
        for (name, data) in seeds.iter().chain(&regressions) {
            let outcome = std::panic::catch_unwind(|| check(data));
            assert!(outcome.is_ok(), "{target}: {name} fails its checks");
        }
    }
}

#[test]
fn every_fuzz_target_binary_is_replayed_here() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut binaries: Vec<String> = std::fs::read_dir(root.join("fuzz_targets"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    binaries.sort();
    let mut replayed: Vec<String> = TARGETS.iter().map(|(t, _)| (*t).to_owned()).collect();
    replayed.sort();
    assert_eq!(binaries, replayed);
}
