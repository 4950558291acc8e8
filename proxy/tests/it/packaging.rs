//! The daemon as packaged (`packaging/`, `make deb`): the systemd unit passes
//! `systemd-analyze verify`, the production config is valid and safe, and the built `.deb`
//! (when `make deb` made one: building it is a release build, too slow for every test run,
//! so CI runs `make deb` first, see `.ci/run`) installs into a scratch root whose binary checks
//! the installed config and serves.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging")
}

/// `systemd-analyze verify` on `unit`, with its `/usr/bin/scalelab-proxy` replaced by
/// `binary` (verify requires every command to exist). Returns its whole output: the command
/// exits 0 even on an unknown key, which it only prints.
fn verify_unit(unit_text: &str, binary: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("scalelab-proxy.service");
    std::fs::write(
        &unit,
        unit_text.replace("/usr/bin/scalelab-proxy", &binary.display().to_string()),
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (scripts/install-deps.sh installs the systemd package)");
    assert!(output.status.success(), "{output:?}");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_unit_passes_systemd_analyze_verify_and_a_typo_would_not() {
    let text = std::fs::read_to_string(packaging().join("scalelab-proxy.service")).unwrap();
    assert_eq!(verify_unit(&text, Path::new(binary())), "");
    for required in [
        "Type=notify\n",
        "ExecReload=/bin/kill -HUP $MAINPID\n",
        "User=scalelab\n",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE\n",
        "ProtectSystem=strict\n",
        "ProtectHome=yes\n",
        "PrivateTmp=yes\n",
        "NoNewPrivileges=yes\n",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n",
        "LimitNOFILE=65536\n",
        "WatchdogSec=30s\n",
    ] {
        assert!(text.contains(required), "the unit lacks {required:?}");
    }
    // The check bites: a misspelt key is reported.
    let typo = text.replace("WatchdogSec=", "WatchdgSec=");
    assert!(verify_unit(&typo, Path::new(binary())).contains("Unknown key 'WatchdgSec'"));
}

/// Starts `binary` on `config` with free ports and returns it once its admin API says healthy
/// and its listener answers (404: the packaged config routes nothing).
async fn serves(binary: &Path, config: &Path) -> ChildGuard {
    let (port, admin) = (
        scalelab_test_support::free_port(),
        scalelab_test_support::free_port(),
    );
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut command = Command::new(binary);
    command
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--admin-listen")
        .arg(format!("127.0.0.1:{admin}"));
    let child = ChildGuard::spawn_logged(&mut command, log.path(), "packaged proxy");
    let http = client();
    eventually(
        Duration::from_secs(15),
        "the packaged proxy to serve",
        || {
            let http = http.clone();
            async move {
                let health = http
                    .get(format!("http://127.0.0.1:{admin}/health"))
                    .send()
                    .await
                    .ok()?;
                let proxied = http
                    .get(format!("http://127.0.0.1:{port}/"))
                    .send()
                    .await
                    .ok()?;
                (health.status() == 200 && proxied.status() == 404).then_some(())
            }
        },
    )
    .await;
    child
}

fn check(binary: &Path, config: &Path) {
    let output = Command::new(binary)
        .arg("--check")
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_production_config_is_valid_has_no_secrets_or_lab_tables_and_serves() {
    let path = packaging().join("config.toml");
    check(Path::new(binary()), &path);
    let text = std::fs::read_to_string(&path).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let keys: Vec<&String> = table.keys().collect();
    assert_eq!(
        keys,
        ["proxy"],
        "only [proxy] is set: no [auth], no [lab], no routes"
    );
    let proxy = table["proxy"].as_table().unwrap();
    assert_eq!(proxy["admin_listen"].as_str(), Some("127.0.0.1:9901"));
    assert!(!proxy.contains_key("debug_headers") || proxy["debug_headers"].as_str() == Some("off"));
    // The example upstream is there, commented out.
    assert!(text.contains("# [upstreams.app]"));
    let _proxy = serves(Path::new(binary()), &path).await;
}

/// The newest `.deb` `make deb` left in the target directory, if any.
fn built_deb() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    std::fs::read_dir(target.join("debian"))
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("scalelab-proxy_") && name.ends_with(".deb"))
        })
        .max_by_key(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_deb_installs_into_a_scratch_root_checks_its_config_and_serves() {
    let Some(deb) = built_deb() else {
        eprintln!("no target/debian/scalelab-proxy_*.deb: run `make deb` (CI does) to test it");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let status = Command::new("dpkg")
        .arg("-x")
        .arg(&deb)
        .arg(root.path())
        .status()
        .unwrap();
    assert!(status.success());
    let installed = root.path().join("usr/bin/scalelab-proxy");
    let config = root.path().join("etc/scalelab/config.toml");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        std::fs::read_to_string(packaging().join("config.toml")).unwrap()
    );
    assert!(root
        .path()
        .join("usr/share/doc/scalelab-proxy/README.md")
        .exists());
    let unit = ["lib/systemd/system", "usr/lib/systemd/system"]
        .iter()
        .map(|dir| root.path().join(dir).join("scalelab-proxy.service"))
        .find(|path| path.exists())
        .expect("the unit in the package");
    assert_eq!(
        verify_unit(&std::fs::read_to_string(unit).unwrap(), &installed),
        ""
    );
    let control = |member: &str| {
        let output = Command::new("dpkg-deb")
            .arg("--info")
            .arg(&deb)
            .arg(member)
            .output()
            .unwrap();
        assert!(output.status.success(), "{member}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(control("conffiles").trim(), "/etc/scalelab/config.toml");
    assert!(control("postinst").contains("adduser --system --group"));
    check(&installed, &config);
    let _proxy = serves(&installed, &config).await;
}
