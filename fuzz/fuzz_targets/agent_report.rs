#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gpudev_fuzz::agent_report(data));
