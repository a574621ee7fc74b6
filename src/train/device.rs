//! Devices: which burn backend and which card a training or a saved model runs on.
//!
//! Takes a device name as a user writes it (`cpu`, `wgpu`, `wgpu:1`, `cuda`, `cuda:0`) and
//! gives a [`DeviceKind`], which [`burn_device`] opens as a burn device. A GPU name the build
//! cannot open (no `wgpu`/`cuda` feature) is refused when parsed, with the feature to build
//! with; an index past the adapters this machine has is refused when opened, naming those
//! there are ([`check`], which `bma run`, `predict` and `eval` ask before any work; with
//! `--features tch` a `cuda` index is checked against LibTorch's CUDA device count, see
//! [`cuda_refusal`], since LibTorch panics on a tensor for a card it lacks). [`memory`] tells
//! what the device says its memory is, where the backend can say.
//!
//! - `cpu`: burn's `flex` backend (one device; `cpu:0` is the same).
//! - `wgpu[:N]`: the N-th wgpu adapter (default 0) in the order wgpu lists them on its
//!   default graphics API (Vulkan on Linux; Mesa's lavapipe is one, a CPU adapter).
//! - `cuda[:N]`: CUDA card N, through CubeCL's CUDA runtime (`--features cuda`) or LibTorch's
//!   (`--features tch`, see the README's GPU section).
//!
//! **Invariants:** burn and cubecl types never leave `train`; opening a device never panics
//! on a missing card (the adapter list is read once per process and an index is checked
//! against it); `DeviceKind`'s text form round-trips through [`std::str::FromStr`].

use std::fmt;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// Where to train or run a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeviceKind {
    /// burn's `flex` CPU backend.
    #[default]
    Cpu,
    /// The wgpu adapter of this index (`--features wgpu`).
    Wgpu(usize),
    /// The CUDA card of this index (`--features cuda` or `tch`).
    Cuda(usize),
}

/// The backends this build can open, for messages: `cpu, wgpu`.
pub fn built() -> Vec<&'static str> {
    let mut v = vec!["cpu"];
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    if cfg!(any(feature = "cuda", feature = "tch")) {
        v.push("cuda");
    }
    v
}

impl DeviceKind {
    /// The backend's name: `cpu`, `wgpu` or `cuda`.
    pub fn backend(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Wgpu(_) => "wgpu",
            DeviceKind::Cuda(_) => "cuda",
        }
    }

    /// The same backend's device `index` (`cpu` has one device: index 0 only).
    pub fn with_index(self, index: usize) -> Result<DeviceKind, String> {
        match self {
            DeviceKind::Cpu if index == 0 => Ok(DeviceKind::Cpu),
            DeviceKind::Cpu => Err(format!("`cpu:{index}`: the CPU backend has one device, `cpu`")),
            DeviceKind::Wgpu(_) => Ok(DeviceKind::Wgpu(index)),
            DeviceKind::Cuda(_) => Ok(DeviceKind::Cuda(index)),
        }
    }

    /// Whether this build has the backend (the parser refuses the others; a [`DeviceKind`]
    /// built in code may still name one).
    pub fn is_built(self) -> bool {
        built().contains(&self.backend())
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceKind::Cpu => write!(f, "cpu"),
            DeviceKind::Wgpu(i) => write!(f, "wgpu:{i}"),
            DeviceKind::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl std::str::FromStr for DeviceKind {
    type Err = String;
    /// `cpu`, `wgpu`, `wgpu:N`, `cuda`, `cuda:N`; a GPU backend this build lacks is refused.
    fn from_str(s: &str) -> Result<DeviceKind, String> {
        let (name, index) = match s.split_once(':') {
            Some((n, i)) => {
                let index = i.parse::<usize>().map_err(|_| {
                    format!(
                        "`{s}`: the device index `{i}` is not a number (write e.g. `{n}:0`, or `{n}` for the first)"
                    )
                })?;
                (n, index)
            }
            None => (s, 0),
        };
        let kind = match name {
            "cpu" => DeviceKind::Cpu,
            "wgpu" => DeviceKind::Wgpu(0),
            "cuda" => DeviceKind::Cuda(0),
            other => return Err(format!("unknown device `{other}`: one of cpu, wgpu[:N], cuda[:N]")),
        };
        if !kind.is_built() {
            let feature = if kind.backend() == "cuda" { "cuda` or `tch" } else { kind.backend() };
            return Err(format!(
                "`{s}`: this bma was built without the `{feature}` feature (it has {}); build it with \
                 `cargo build --release --features {}` (README, section GPU)",
                built().join(", "),
                kind.backend()
            ));
        }
        kind.with_index(index)
    }
}

impl Serialize for DeviceKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DeviceKind, D::Error> {
        let text = String::deserialize(d)?;
        parse_any(&text).map_err(serde::de::Error::custom)
    }
}

/// The device's name without the build check: a recorded device names what ran, whatever
/// this build has.
fn parse_any(text: &str) -> Result<DeviceKind, String> {
    let (name, index) = text.split_once(':').unwrap_or((text, "0"));
    let index: usize = index.parse().map_err(|_| format!("`{text}` is not a device"))?;
    match name {
        "cpu" => Ok(DeviceKind::Cpu),
        "wgpu" => Ok(DeviceKind::Wgpu(index)),
        "cuda" => Ok(DeviceKind::Cuda(index)),
        _ => Err(format!("`{text}` is not a device")),
    }
}

/// The entries of `--devices` for a study that trains its own models: each is a device name
/// (`wgpu:1`) or an index of `default`'s backend (`1` with `--device wgpu` is `wgpu:1`). An
/// entry may repeat: `0,0,1` lets device 0 run two trials at once (see the placement rule in
/// `study::command`).
pub fn placements(entries: &[String], default: DeviceKind) -> Result<Vec<DeviceKind>, String> {
    entries
        .iter()
        .map(|e| match e.trim().parse::<usize>() {
            Ok(i) => default.with_index(i).map_err(|m| format!("--devices: {m}")),
            Err(_) => e.trim().parse::<DeviceKind>().map_err(|m| format!("--devices: {m}")),
        })
        .collect()
}

/// The burn device for a kind (see the module header for what each name opens).
pub(super) fn burn_device(kind: DeviceKind) -> Result<Device, String> {
    match kind {
        DeviceKind::Cpu => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu(i) => gpu::wgpu(i).map(|g| Device::new(g.device.clone())),
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda(i) => gpu::cuda(i).map(|g| Device::new(g.device.clone())),
        #[cfg(all(feature = "tch", not(feature = "cuda")))]
        #[allow(deprecated)] // burn-tch is deprecated, and is the route that builds from the registries alone
        DeviceKind::Cuda(i) => libtorch_cuda(i).map(|()| Device::libtorch_cuda(i)),
        #[allow(unreachable_patterns)]
        other => Err(format!("this bma was built without the `{}` feature", other.backend())),
    }
}

/// `Ok` when `kind` opens on this machine: a GPU index among the cards there are (LibTorch's
/// CUDA asked for its device count first, since it panics on a tensor for a card it lacks).
/// What `bma run`, `predict` and `eval` ask before any work.
pub fn check(kind: DeviceKind) -> Result<(), String> {
    burn_device(kind).map(|_| ())
}

/// `cuda:index` through LibTorch, which sees `count` CUDA devices: `None` when the index is
/// among them, else the refusal (the logic of the `tch` build's check, built in every build).
pub fn cuda_refusal(index: usize, count: usize) -> Option<String> {
    match count {
        _ if index < count => None,
        0 => Some(format!(
            "`cuda:{index}`: LibTorch finds no CUDA device on this machine (no NVIDIA card, no driver, or the \
             torch wheel's CUDA libraries did not load: `nvidia-smi` should list the card); use `--device cpu`"
        )),
        n => Some(format!(
            "`cuda:{index}`: LibTorch finds {n} CUDA device(s) on this machine: {}",
            (0..n).map(|i| format!("cuda:{i}")).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// LibTorch's answer for `cuda:index` (asks `tch` for the CUDA device count).
#[cfg(all(feature = "tch", not(feature = "cuda")))]
fn libtorch_cuda(index: usize) -> Result<(), String> {
    let count = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
    cuda_refusal(index, count).map_or(Ok(()), Err)
}

/// What a device says of itself: its name and, where the backend can tell, its memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// As the driver names it, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`; `cpu` for flex.
    pub name: String,
    /// The device's memory in bytes (its largest device-local heap), `None` where the
    /// backend cannot say (flex, LibTorch).
    pub memory: Option<u64>,
}

/// What `kind` says of itself; an error when it cannot be opened.
pub fn info(kind: DeviceKind) -> Result<DeviceInfo, String> {
    match kind {
        DeviceKind::Cpu => Ok(DeviceInfo { name: "cpu (burn flex)".into(), memory: None }),
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu(i) => gpu::wgpu(i).map(|g| g.info.clone()),
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda(i) => gpu::cuda(i).map(|g| g.info.clone()),
        #[cfg(all(feature = "tch", not(feature = "cuda")))]
        DeviceKind::Cuda(i) => {
            libtorch_cuda(i).map(|()| DeviceInfo { name: format!("LibTorch CUDA device {i}"), memory: None })
        }
        #[allow(unreachable_patterns)]
        other => Err(format!("this bma was built without the `{}` feature", other.backend())),
    }
}

/// The device memory `kind` has, where the backend can tell (see [`DeviceInfo::memory`]).
pub fn memory(kind: DeviceKind) -> Option<u64> {
    info(kind).ok().and_then(|i| i.memory)
}

impl super::Model {
    /// The device this model's weights are on.
    pub fn device(&self) -> DeviceKind {
        self.device
    }

    /// The same model with its weights on `kind`'s device (itself when already there).
    pub fn on_device(&self, kind: DeviceKind) -> Result<super::Model, String> {
        if kind == self.device {
            return Ok(self.clone());
        }
        let device = burn_device(kind)?;
        let init = super::net::Net::init(&self.plan, super::Init::Default, &mut crate::rng::Rng::new(0), &device);
        let net = init.load_tensors(&self.plan, &self.tensors(), &device)?;
        Ok(super::Model { net, device: kind, ..self.clone() })
    }
}

/// CubeCL's devices (wgpu, CUDA), listed once per process.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod gpu {
    use std::sync::OnceLock;

    use burn::cubecl::Device as Cube;

    use super::DeviceInfo;

    pub(super) struct Gpu {
        pub device: Cube,
        pub info: DeviceInfo,
    }

    /// Every CubeCL device this build links, with its name and memory (opening each once).
    fn all() -> &'static [Gpu] {
        static ALL: OnceLock<Vec<Gpu>> = OnceLock::new();
        ALL.get_or_init(|| {
            Cube::enumerate_all()
                .into_iter()
                .filter_map(|device| {
                    // A device whose runtime fails to come up (a broken driver) is left out
                    // of the list, rather than taking the process down.
                    let open = std::panic::AssertUnwindSafe(|| {
                        let client = device.client();
                        let props = client.properties();
                        DeviceInfo { name: props.identity.name.clone(), memory: props.memory.max_memory() }
                    });
                    let info = std::panic::catch_unwind(open).ok()?;
                    Some(Gpu { device, info })
                })
                .collect()
        })
    }

    fn pick(backend: &str, index: usize, of: fn(&Cube) -> bool) -> Result<&'static Gpu, String> {
        let mine: Vec<&Gpu> = all().iter().filter(|g| of(&g.device)).collect();
        match mine.get(index) {
            Some(g) => Ok(g),
            None if mine.is_empty() => Err(format!(
                "`{backend}:{index}`: this machine has no {backend} device (no driver or card found{})",
                if backend == "wgpu" { "; on Linux, a Vulkan driver: e.g. Debian's mesa-vulkan-drivers" } else { "" }
            )),
            None => Err(format!(
                "`{backend}:{index}`: this machine has {} {backend} device(s): {}",
                mine.len(),
                mine.iter()
                    .enumerate()
                    .map(|(i, g)| format!("{backend}:{i} {}", g.info.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    #[cfg(feature = "wgpu")]
    pub(super) fn wgpu(index: usize) -> Result<&'static Gpu, String> {
        pick("wgpu", index, |d| matches!(d, Cube::Wgpu(_)))
    }

    #[cfg(feature = "cuda")]
    pub(super) fn cuda(index: usize) -> Result<&'static Gpu, String> {
        pick("cuda", index, |d| matches!(d, Cube::Cuda(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_print_back() {
        assert_eq!("cpu".parse::<DeviceKind>(), Ok(DeviceKind::Cpu));
        assert_eq!("cpu:0".parse::<DeviceKind>(), Ok(DeviceKind::Cpu));
        let e = "cpu:1".parse::<DeviceKind>().expect_err("one cpu");
        assert!(e.contains("one device"), "{e}");
        let e = "tpu".parse::<DeviceKind>().expect_err("unknown");
        assert!(e.contains("unknown device `tpu`") && e.contains("wgpu[:N]"), "{e}");
        let e = "wgpu:x".parse::<DeviceKind>().expect_err("bad index");
        assert!(e.contains("`x` is not a number"), "{e}");
        for (text, kind) in [("wgpu", DeviceKind::Wgpu(0)), ("wgpu:2", DeviceKind::Wgpu(2))] {
            let got = text.parse::<DeviceKind>();
            if cfg!(feature = "wgpu") {
                assert_eq!(got, Ok(kind));
                assert_eq!(kind.to_string().parse::<DeviceKind>(), Ok(kind));
            } else {
                let e = got.expect_err("no wgpu in this build");
                assert!(e.contains("built without the `wgpu` feature") && e.contains("--features wgpu"), "{e}");
            }
        }
        let got = "cuda:1".parse::<DeviceKind>();
        if cfg!(any(feature = "cuda", feature = "tch")) {
            assert_eq!(got, Ok(DeviceKind::Cuda(1)));
        } else {
            assert!(got.expect_err("no cuda").contains("built without the `cuda` or `tch` feature"));
        }
    }

    #[test]
    fn a_recorded_device_reads_back_whatever_the_build() {
        for kind in [DeviceKind::Cpu, DeviceKind::Wgpu(3), DeviceKind::Cuda(1)] {
            let json = serde_json::to_string(&kind).expect("serialises");
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(serde_json::from_str::<DeviceKind>(&json).expect("reads"), kind);
        }
        assert!(serde_json::from_str::<DeviceKind>("\"tpu:0\"").is_err());
    }

    #[test]
    fn devices_entries_are_indices_of_the_device_backend_or_names() {
        let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            placements(&e(&["0", "0", "1"]), DeviceKind::Wgpu(0)),
            Ok(vec![DeviceKind::Wgpu(0), DeviceKind::Wgpu(0), DeviceKind::Wgpu(1)])
        );
        assert_eq!(
            placements(&e(&["3", " 2 "]), DeviceKind::Cuda(0)),
            Ok(vec![DeviceKind::Cuda(3), DeviceKind::Cuda(2)])
        );
        assert_eq!(placements(&e(&["0", "cpu"]), DeviceKind::Cpu), Ok(vec![DeviceKind::Cpu, DeviceKind::Cpu]));
        let err = placements(&e(&["0", "1"]), DeviceKind::Cpu).expect_err("one cpu");
        assert!(err.starts_with("--devices: `cpu:1`"), "{err}");
        let err = placements(&e(&["gpu7"]), DeviceKind::Cpu).expect_err("unknown");
        assert!(err.contains("unknown device `gpu7`"), "{err}");
    }

    #[test]
    fn a_cuda_index_past_the_cards_libtorch_counts_is_refused_naming_them() {
        let none = cuda_refusal(0, 0).expect("no card");
        assert!(none.starts_with("`cuda:0`: LibTorch finds no CUDA device on this machine"), "{none}");
        assert!(none.contains("--device cpu"), "{none}");
        assert_eq!(cuda_refusal(0, 1), None);
        assert_eq!(cuda_refusal(1, 2), None);
        let past = cuda_refusal(2, 2).expect("two cards");
        assert_eq!(past, "`cuda:2`: LibTorch finds 2 CUDA device(s) on this machine: cuda:0, cuda:1");
        assert!(check(DeviceKind::Cpu).is_ok());
    }

    #[test]
    fn the_cpu_opens_and_says_it_has_no_device_memory_of_its_own() {
        assert!(burn_device(DeviceKind::Cpu).is_ok());
        assert_eq!(memory(DeviceKind::Cpu), None);
        if !cfg!(feature = "wgpu") {
            let e = burn_device(DeviceKind::Wgpu(0)).expect_err("not built");
            assert!(e.contains("without the `wgpu` feature"), "{e}");
        }
    }
}
