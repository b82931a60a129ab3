//! What the load harness and the soak share: settings from the environment,
//! and the real release binary as a child process.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

pub fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

pub fn number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub struct Server {
    pub child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub database_url: String,
}

impl Server {
    /// Starts the release binary pinned to `cpu`, with `env` on top of the
    /// defaults, in a directory of its own (its keys live there).
    pub fn start(database_url: String, cpu: &str, env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new("taskset")
            .args(["-c", cpu, env!("CARGO_BIN_EXE_tessera"), "serve"])
            .current_dir(dir.path())
            .env("TESSERA_BIND", "127.0.0.1:0")
            .env("TESSERA_DATABASE_URL", &database_url)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tessera under taskset");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut seen = Vec::new();
        let port = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!("the server did not start:\n{}", seen.join("\n"));
            };
            seen.push(line.clone());
            if let Some(rest) = line.split("listening on port ").nth(1) {
                break rest.split(',').next().expect("port").trim().to_owned();
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
            database_url,
        }
    }

    pub fn cli(&self, args: &[&str]) -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .current_dir(self.dir.path())
            .env("TESSERA_DATABASE_URL", &self.database_url)
            .output()
            .expect("tessera CLI");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    }

    /// A client's `Authorization` header value.
    pub fn client(&self, extra: &[&str]) -> String {
        let mut args = vec![
            "client",
            "create",
            "--name",
            "load",
            "--scope",
            "read",
            "--audience",
            "https://api.example.com",
            "--json",
        ];
        if !extra.contains(&"--access-token-ttl") {
            args.extend_from_slice(&["--access-token-ttl", "3600"]);
        }
        args.extend_from_slice(extra);
        let c = self.cli(&args);
        let pair = format!(
            "{}:{}",
            c["client_id"].as_str().expect("id"),
            c["client_secret"].as_str().expect("secret")
        );
        format!("Basic {}", STANDARD.encode(pair))
    }

    pub fn post(&self, path: &str, auth: &str, body: &str) -> Value {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-X",
                "POST",
                "-H",
                &format!("Authorization: {auth}"),
                "-H",
                "Content-Type: application/x-www-form-urlencoded",
                "--data",
                body,
            ])
            .arg(format!("{}{path}", self.base))
            .output()
            .expect("curl");
        serde_json::from_slice(&out.stdout).expect("JSON answer")
    }

    /// Resident memory now and at its peak, in MiB.
    pub fn memory(&self) -> (f64, f64) {
        // The child is taskset, which exec()s the server: same pid.
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                .map_or(0.0, |kib| kib / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
