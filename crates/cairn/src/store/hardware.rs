//! The machine a result was measured on, as facts and as a fingerprint.
//!
//! What goes into [`Hardware::fingerprint`], because results measured with
//! one of them differ from results measured with another: the architecture,
//! the operating system, the CPU vendor and model, the number of logical
//! CPUs this process may use, the SIMD features detected at run time, and
//! each GPU's model and memory. GPUs are read through NVML when the crate
//! is built with the `nvml` feature; NVIDIA's library is loaded at run time,
//! so a machine without it, without a driver or without a GPU simply lists
//! none (as does a build without the feature).
//!
//! What is kept as metadata only, because it changes without changing what
//! the machine computes or how fast: the host name, the kernel release and
//! the amount of memory.

use serde::{Deserialize, Serialize};

use super::fingerprint::Fingerprint;

/// One GPU, as far as it is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    /// The model name, e.g. "NVIDIA A100-SXM4-80GB".
    pub model: String,
    /// Device memory in bytes.
    pub memory_bytes: u64,
}

/// What [`Hardware::detect`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hardware {
    /// `std::env::consts::ARCH`, e.g. "x86_64".
    pub arch: String,
    /// `std::env::consts::OS`, e.g. "linux".
    pub os: String,
    /// The CPU vendor ("GenuineIntel", "AuthenticAMD", …) or "unknown".
    pub cpu_vendor: String,
    /// The CPU model name or "unknown".
    pub cpu_model: String,
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// SIMD features detected at run time, sorted.
    pub simd: Vec<String>,
    /// GPUs, in device order.
    pub gpus: Vec<Gpu>,
    /// Metadata only: total memory in bytes, if known.
    pub memory_bytes: Option<u64>,
    /// Metadata only: the host name, if known.
    pub hostname: Option<String>,
    /// Metadata only: the kernel release, if known.
    pub kernel: Option<String>,
}

impl Hardware {
    /// Detects this machine's facts. Never fails: what cannot be read is
    /// "unknown" or `None`.
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |names: &[&str]| {
            cpuinfo
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    names.contains(&k.trim()).then(|| v.trim().to_string())
                })
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "unknown".to_string())
        };
        let read =
            |path: &str| std::fs::read_to_string(path).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let memory_bytes = read("/proc/meminfo").and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            kib.checked_mul(1024)
        });
        Hardware {
            arch: std::env::consts::ARCH.to_string(),
            os: std::env::consts::OS.to_string(),
            cpu_vendor: field(&["vendor_id", "CPU implementer"]),
            cpu_model: field(&["model name", "Model", "cpu model"]),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            simd: simd_features(),
            gpus: gpus(),
            memory_bytes,
            hostname: Some(host_name().to_string()).filter(|h| !h.is_empty()),
            kernel: read("/proc/sys/kernel/osrelease"),
        }
    }

    /// The fingerprint of the facts that go into keys (see the module docs).
    pub fn fingerprint(&self) -> Fingerprint {
        let mut b = Fingerprint::builder()
            .str("arch", &self.arch)
            .str("os", &self.os)
            .str("cpu_vendor", &self.cpu_vendor)
            .str("cpu_model", &self.cpu_model)
            .u64("cores", self.cores as u64)
            .str("simd", &self.simd.join(","))
            .u64("gpus", self.gpus.len() as u64);
        for g in &self.gpus {
            b = b.str("gpu_model", &g.model).u64("gpu_memory", g.memory_bytes);
        }
        b.finish()
    }
}

/// The NVIDIA GPUs NVML reports, in device order; none when NVML cannot
/// be loaded or reports an error (no driver, no permission, no GPU).
#[cfg(feature = "nvml")]
fn gpus() -> Vec<Gpu> {
    let Ok(nvml) = nvml_wrapper::Nvml::init() else { return Vec::new() };
    let count = nvml.device_count().unwrap_or(0);
    (0..count)
        .filter_map(|i| {
            let d = nvml.device_by_index(i).ok()?;
            Some(Gpu { model: d.name().ok()?, memory_bytes: d.memory_info().map(|m| m.total).unwrap_or(0) })
        })
        .collect()
}

/// Without the `nvml` feature no GPU is detected.
#[cfg(not(feature = "nvml"))]
fn gpus() -> Vec<Gpu> {
    Vec::new()
}

/// This machine's host name, read once; empty if unknown.
pub(crate) fn host_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
    })
}

/// The SIMD features of a fixed list that this CPU has, sorted.
fn simd_features() -> Vec<String> {
    #[allow(unused_mut)]
    let mut found: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! x86 {
            ($($f:tt),*) => { $( if std::arch::is_x86_feature_detected!($f) { found.push($f); } )* };
        }
        x86!(
            "sse4.2",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "bmi2",
            "aes",
            "sha",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! arm {
            ($($f:tt),*) => { $( if std::arch::is_aarch64_feature_detected!($f) { found.push($f); } )* };
        }
        arm!("neon", "fp16", "dotprod", "sve", "sve2", "i8mm", "bf16");
    }
    let mut out: Vec<String> = found.into_iter().map(str::to_string).collect();
    out.sort();
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn detection_is_stable_within_a_process_and_fills_the_basics() {
        let a = Hardware::detect();
        let b = Hardware::detect();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.arch, std::env::consts::ARCH);
        assert!(a.cores >= 1);
        assert!(a.simd.windows(2).all(|w| w[0] < w[1]), "{:?}", a.simd);
    }

    #[test]
    fn metadata_does_not_change_the_fingerprint_but_key_facts_do() {
        let a = Hardware::detect();
        let mut meta = a.clone();
        meta.hostname = Some("elsewhere".into());
        meta.kernel = Some("0.0".into());
        meta.memory_bytes = Some(1);
        assert_eq!(a.fingerprint(), meta.fingerprint());
        let mut cores = a.clone();
        cores.cores += 1;
        assert_ne!(a.fingerprint(), cores.fingerprint());
        let mut gpu = a.clone();
        gpu.gpus.push(Gpu { model: "X".into(), memory_bytes: 1 << 30 });
        assert_ne!(a.fingerprint(), gpu.fingerprint());
    }
}
