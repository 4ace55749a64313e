// The stable-toolchain driver of a fuzz target (scripts/fuzz.sh, FUZZ_ENGINE=stable): what
// libFuzzer's main does, minus coverage guidance. fuzz/stable/generate.py appends this file to
// each target of fuzz/fuzz_targets/ (its `fuzz_target!` unchanged, libfuzzer-sys built without
// libFuzzer, `#![no_main]` dropped) with the constants `STABLE_FUZZ_DIR` (the fuzz/ directory)
// and `STABLE_FUZZ_TARGET` (the target's name).
//
//   <target> [FILE...]   with files: run exactly these inputs (reproduce a crash)
//   without: replay fuzz/seeds/<target>/ and fuzz/corpus/<target>/, then mutate them at random
//            for FUZZ_SECONDS (default 5); FUZZ_SEED fixes the random sequence
//
// A panic (a failed assertion of the target) writes the input to
// fuzz/artifacts/<target>/crash-<hash>, prints it and the seed, and exits 1; a crash that is not
// a panic (an abort, a stack overflow) ends the process with its signal, which fails as well.

mod stable_fuzz_driver {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    extern "C" {
        // Both defined by `fuzz_target!` (libfuzzer-sys), as libFuzzer calls them.
        fn LLVMFuzzerInitialize(argc: *const isize, argv: *const *const *const u8) -> isize;
        #[allow(improper_ctypes)]
        fn rust_fuzzer_test_input(input: &[u8]) -> i32;
    }

    const MAX_LEN: usize = 4096;
    /// Fragments the targets' inputs are made of: JSON syntax, the contract's field names and
    /// values, edge numbers and dates, HTTP bits.
    const DICTIONARY: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b":",
        b",",
        b"null",
        b"true",
        b"false",
        b"0",
        b"-1",
        b"1e309",
        b"-0",
        b"999",
        b"1000",
        b"710",
        b"18446744073709551616",
        b"0.5",
        b"\"bureau\"",
        b"\"score\"",
        b"\"reportedAt\"",
        b"\"reportId\"",
        b"\"userId\"",
        b"\"version\"",
        b"\"source\"",
        b"\"receivedAt\"",
        b"\"experian\"",
        b"\"equifax\"",
        b"\"transunion\"",
        b"\"api\"",
        b"\"batch:x\"",
        b"2026-11-28T10:00:00Z",
        b"9999-12-31T23:59:59-13:59",
        b"0000-01-01T00:00:00+14:00",
        b"2026-11-28T10:05:01Z",
        b".123456789",
        b"\\u0000",
        b"\\uffff",
        b"\\ud800",
        b"\xef\xbf\xbf",
        b"\xff",
        b"/",
        b"/v1/users/",
        b"/credit-scores",
        b"/latest",
        b"/batch",
        b"?cursor=",
        b"&limit=",
        b"Bearer ",
        b"application/json",
        b"%",
        b"..",
    ];

    /// xorshift64*: small, seedable, good enough to pick mutations.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            if n == 0 {
                0
            } else {
                (self.next() % n as u64) as usize
            }
        }
    }

    fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        for _ in 0..1 + rng.below(6) {
            let len = input.len();
            match rng.below(9) {
                0 if len > 0 => {
                    let i = rng.below(len);
                    input[i] ^= 1 << rng.below(8);
                }
                1 if len > 0 => {
                    let i = rng.below(len);
                    input[i] = rng.next() as u8;
                }
                2 => {
                    let at = rng.below(len + 1);
                    let n = 1 + rng.below(8);
                    let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                    input.splice(at..at, bytes);
                }
                3 if len > 0 => {
                    let from = rng.below(len);
                    let to = (from + 1 + rng.below(16)).min(len);
                    input.drain(from..to);
                }
                4 if len > 0 => {
                    let from = rng.below(len);
                    let to = (from + 1 + rng.below(32)).min(len);
                    let chunk = input[from..to].to_vec();
                    let at = rng.below(len + 1);
                    input.splice(at..at, chunk);
                }
                5 if !corpus.is_empty() => {
                    let other = &corpus[rng.below(corpus.len())];
                    let cut = rng.below(len + 1);
                    let from = rng.below(other.len() + 1);
                    input.truncate(cut);
                    input.extend_from_slice(&other[from..]);
                }
                6 | 7 => {
                    let word = DICTIONARY[rng.below(DICTIONARY.len())];
                    let at = rng.below(len + 1);
                    if rng.below(2) == 0 || len == 0 {
                        input.splice(at..at, word.iter().copied());
                    } else {
                        let end = (at + word.len()).min(len);
                        input.splice(at..end, word.iter().copied());
                    }
                }
                _ => {
                    let n = rng.below(64);
                    *input = (0..n).map(|_| rng.next() as u8).collect();
                }
            }
        }
        input.truncate(MAX_LEN);
    }

    fn files_in(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// FNV-1a of the input: a stable artifact name.
    fn hash(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    /// The input being run and where it came from, for the panic hook: a panic cannot unwind
    /// out of `rust_fuzzer_test_input` (an `extern "C"` function aborts instead), so the
    /// report is made in the hook, before the abort, and the process exits there.
    static INPUT: Mutex<(Vec<u8>, String)> = Mutex::new((Vec::new(), String::new()));

    struct Target {
        name: String,
        fuzz_dir: PathBuf,
        seed: u64,
    }

    impl Target {
        /// Replaces the target's hook (libfuzzer-sys's aborts): a panic is reported with the
        /// input that caused it, which is kept as an artifact, and the process exits 1.
        fn install_panic_hook(&self) {
            let _ = std::panic::take_hook();
            let default = std::panic::take_hook();
            let (name, fuzz_dir, seed) = (self.name.clone(), self.fuzz_dir.clone(), self.seed);
            std::panic::set_hook(Box::new(move |info| {
                default(info);
                let (input, origin) = INPUT
                    .lock()
                    .map(|guard| guard.clone())
                    .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
                let dir = fuzz_dir.join("artifacts").join(&name);
                let path = dir.join(format!("crash-{:016x}", hash(&input)));
                let saved =
                    std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &input));
                eprintln!(
                    "{name}: PANIC on {origin}\n  input ({} bytes): {:?}\n  saved: {}\n  seed: FUZZ_SEED={seed}\n  reproduce: scripts/fuzz.sh --reproduce {name} {}",
                    input.len(),
                    String::from_utf8_lossy(&input),
                    match saved {
                        Ok(()) => path.display().to_string(),
                        Err(e) => format!("could not save it: {e}"),
                    },
                    path.display(),
                );
                std::process::exit(1);
            }));
        }

        /// Runs one input (a panic ends the process in the hook above).
        fn run(&self, input: &[u8], origin: &str) {
            {
                let mut current = INPUT.lock().unwrap_or_else(|p| p.into_inner());
                current.0.clear();
                current.0.extend_from_slice(input);
                if current.1 != origin {
                    current.1 = origin.to_owned();
                }
            }
            unsafe {
                rust_fuzzer_test_input(input);
            }
        }
    }

    pub fn main() {
        let name = crate::STABLE_FUZZ_TARGET.to_owned();
        let fuzz_dir = PathBuf::from(
            std::env::var("FUZZ_DIR").unwrap_or_else(|_| crate::STABLE_FUZZ_DIR.to_owned()),
        );
        // The target's `init:` code runs as under libFuzzer.
        unsafe {
            LLVMFuzzerInitialize(std::ptr::null(), std::ptr::null());
        }
        let seed = std::env::var("FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
            | 1;
        let target = Target {
            name,
            fuzz_dir,
            seed,
        };
        target.install_panic_hook();

        let args: Vec<String> = std::env::args().skip(1).collect();
        if !args.is_empty() {
            for file in &args {
                let input = std::fs::read(file).unwrap_or_else(|e| panic!("reading {file}: {e}"));
                target.run(&input, file);
                println!("{}: {file}: no panic", target.name);
            }
            return;
        }

        let started = Instant::now();
        let mut corpus = Vec::new();
        for dir in ["seeds", "corpus"] {
            for file in files_in(&target.fuzz_dir.join(dir).join(&target.name)) {
                let input = std::fs::read(&file)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
                target.run(&input, &file.display().to_string());
                corpus.push(input);
            }
        }
        let replayed = corpus.len();
        // The empty input, too.
        target.run(&[], "the empty input");

        let seconds: u64 = std::env::var("FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5);
        let deadline = started + Duration::from_secs(seconds);
        let mut rng = Rng(seed);
        let mut executed = 0u64;
        while Instant::now() < deadline {
            for _ in 0..64 {
                let mut input = if corpus.is_empty() || rng.below(16) == 0 {
                    Vec::new()
                } else {
                    corpus[rng.below(corpus.len())].clone()
                };
                mutate(&mut rng, &mut input, &corpus);
                target.run(&input, "a mutated input");
                executed += 1;
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "{}: replayed {replayed} seed/corpus inputs, then {executed} mutated inputs in {elapsed:.1}s ({:.0}/s, FUZZ_SEED={seed}): no panic",
            target.name,
            executed as f64 / elapsed.max(0.001),
        );
    }
}

fn main() {
    stable_fuzz_driver::main();
}
