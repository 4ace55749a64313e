//! The repository stands alone: every relative link in its Markdown resolves to a file inside
//! it (nothing points at a `../shared` beside the checkout), and the README lists every
//! command the scripts require.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

fn tracked_files() -> Vec<PathBuf> {
    let root = repo_root();
    let output = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(&root)
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git ls-files failed");
    output
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| root.join(String::from_utf8_lossy(p).as_ref()))
        .filter(|p| p.is_file())
        .collect()
}

/// The targets of `[text](target)` links in Markdown.
fn markdown_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("](") {
        rest = &rest[start + 2..];
        if let Some(end) = rest.find(')') {
            links.push(rest[..end].trim().to_owned());
            rest = &rest[end..];
        }
    }
    links
}

#[test]
fn no_tracked_file_links_outside_the_repository() {
    let root = repo_root().canonicalize().expect("the repository exists");
    // Built from parts so this file does not match itself.
    let outside = ["..", "/shared/"].concat();
    let mut offenders = Vec::new();
    for file in tracked_files() {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let name = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        let is_markdown = name.ends_with(".md");
        for link in markdown_links(&text).into_iter().filter(|_| is_markdown) {
            if link.contains("://") || link.starts_with('#') || link.starts_with("mailto:") {
                continue;
            }
            let path = link.split('#').next().unwrap_or_default();
            if path.is_empty() {
                continue;
            }
            let target = file.parent().unwrap_or(&root).join(path);
            match target.canonicalize() {
                Ok(t) if t.starts_with(&root) => {}
                _ => offenders.push(format!("{name}: ({link})")),
            }
        }
        // Cargo's `path = "../shared"` in fuzz/ is the crate inside this repository.
        if name != "fuzz/Cargo.toml" && text.contains(&outside) {
            offenders.push(format!("{name}: mentions {outside}"));
        }
    }
    assert!(
        offenders.is_empty(),
        "links that leave the repository or point at nothing:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_readme_lists_every_command_the_scripts_require() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let prerequisites = readme
        .split("\n## ")
        .find(|section| section.starts_with("Prerequisites"))
        .expect("README has a Prerequisites section");
    let mut missing = Vec::new();
    for dir in ["scripts", "localstack", "infra"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("script folder") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_none_or(|e| e != "sh") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("script text");
            for line in text.lines() {
                let Some(words) = line.trim().strip_prefix("require_cmd ") else {
                    continue;
                };
                for word in words.split_whitespace() {
                    let command = word.trim_matches('"');
                    if command.starts_with('$') || command.starts_with('#') {
                        continue;
                    }
                    if !prerequisites.contains(&format!("`{command}`")) {
                        missing.push(format!("{command} (required by {})", path.display()));
                    }
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not listed under README's Prerequisites: {missing:?}"
    );
    // Every target the first screen shows needs make.
    assert!(prerequisites.contains("`make`"));
}
