//! The dependency rules of ARCHITECTURE.md, checked: every crate's
//! `Cargo.toml` (its normal dependencies; optional ones count) and, for the
//! engine, its sources.

use std::path::{Path, PathBuf};

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A crate's normal dependencies, as (name, optional).
fn dependencies(krate: &str) -> Vec<(String, bool)> {
    let text = std::fs::read_to_string(crates_dir().join(krate).join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    manifest
        .get("dependencies")
        .and_then(|d| d.as_table())
        .map(|deps| {
            deps.iter()
                .map(|(name, spec)| {
                    let optional = spec
                        .as_table()
                        .and_then(|t| t.get("optional"))
                        .and_then(|o| o.as_bool())
                        .unwrap_or(false);
                    (name.clone(), optional)
                })
                .collect()
        })
        .unwrap_or_default()
}

const DATABASE_CLIENTS: &[&str] = &["rusqlite", "tokio-postgres"];

#[test]
fn each_crate_depends_only_on_what_the_architecture_allows() {
    let rules: &[(&str, &[&str])] = &[
        (
            "policy",
            &[
                "tokio",
                "rusqlite",
                "tokio-postgres",
                "axum",
                "clap",
                "utoipa",
                "custodian-vault",
                "custodian-engine",
                "custodian-server",
            ],
        ),
        (
            "vault",
            &["axum", "clap", "custodian-engine", "custodian-server"],
        ),
        (
            "engine",
            &[
                "axum",
                "clap",
                "rusqlite",
                "tokio-postgres",
                "mysql_async",
                "redis",
                "custodian-server",
                "custodian-connectors",
            ],
        ),
        (
            "connectors",
            &["axum", "clap", "rusqlite", "custodian-server", "utoipa"],
        ),
        (
            "server",
            &[
                "clap",
                "rusqlite",
                "tokio-postgres",
                "mysql_async",
                "redis",
                "custodian-connectors",
            ],
        ),
    ];
    for (krate, forbidden) in rules {
        for (dep, optional) in dependencies(krate) {
            assert!(
                !forbidden.contains(&dep.as_str()),
                "crate `{krate}` depends on `{dep}`, which ARCHITECTURE.md forbids"
            );
            if dep == "utoipa" {
                assert!(
                    optional || *krate == "server",
                    "crate `{krate}` depends on utoipa unconditionally; only the server may"
                );
            }
        }
    }
    // The binary is the only crate that depends on the server.
    for krate in ["policy", "vault", "engine"] {
        assert!(
            !dependencies(krate)
                .iter()
                .any(|(d, _)| d == "custodian-server" || d == "custodian"),
            "{krate}"
        );
    }
    assert!(
        !dependencies("engine")
            .iter()
            .any(|(d, _)| DATABASE_CLIENTS.contains(&d.as_str()))
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The engine's code never names the HTTP or CLI crates, and names utoipa
/// only inside `cfg_attr(feature = "openapi", ...)` or in a module compiled
/// only with that feature.
#[test]
fn the_engine_names_no_http_or_cli_crate() {
    let mut files = Vec::new();
    rust_files(&crates_dir().join("engine/src"), &mut files);
    assert!(!files.is_empty());
    let lib = std::fs::read_to_string(crates_dir().join("engine/src/lib.rs")).unwrap();
    let gated = |file: &Path| {
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        lib.contains(&format!("#[cfg(feature = \"openapi\")]\npub mod {name};"))
    };
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        if gated(&file) {
            assert!(!text.contains("axum") && !text.contains("clap"));
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let at = format!("{}:{}", file.display(), n + 1);
            assert!(!line.contains("axum"), "{at}: {line}");
            assert!(!line.contains("clap"), "{at}: {line}");
            if line.contains("utoipa") {
                assert!(
                    line.contains("cfg_attr(feature = \"openapi\""),
                    "{at}: {line}"
                );
            }
        }
    }
}

/// Every audit entry the engine writes names its action from
/// `AuditAction`: no use case spells one as a string, which a search of
/// the audit could then miss. Test modules are left out; they read
/// entries back, as strings.
#[test]
fn the_engine_names_audit_actions_only_through_the_enum() {
    let mut files = Vec::new();
    rust_files(&crates_dir().join("engine/src"), &mut files);
    for file in files {
        let name = file.to_string_lossy().to_string();
        if name.ends_with("audit_action.rs") || name.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            let at = format!("{name}:{}", n + 1);
            let line = line.trim();
            assert!(!line.starts_with("action: \""), "{at}: {line}");
            assert!(!line.starts_with("action: format!"), "{at}: {line}");
        }
    }
}
