//! A kubectl binary run against apisim with a kubeconfig, its HOME beside it (so ~/.kube stays untouched).

use std::path::PathBuf;
use std::process::Command;

pub struct Kubectl {
    pub binary: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Kubectl {
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(&self.binary)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("HOME", self.kubeconfig.parent().unwrap()) // keep ~/.kube untouched
            .output()
            .unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args);
        assert!(ok, "kubectl {args:?} failed:\n{text}");
        text
    }

    /// `kubectl get <args> -o json`, parsed.
    pub fn get(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(&[&["get"], args, &["-o", "json"]].concat());
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl get {args:?}: {e}\n{out}"))
    }
}
