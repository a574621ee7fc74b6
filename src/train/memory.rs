//! Whether a sub-model can be trained in the memory this machine has left.
//!
//! A typo such as `dense(1000000000)` makes a sub-model of billions of parameters: allocating
//! it got the process killed by the system (out of memory), losing the run's other trials in
//! flight. [`estimate`] is a lower bound of what training takes, from the expanded graph alone;
//! the runner fails a trial whose estimate exceeds [`available`] before anything is allocated.
//!
//! On a GPU the limit is the device's own memory where its backend reports it (wgpu, CubeCL
//! CUDA: `train::device::memory`); where it cannot (LibTorch), the guard falls back on host
//! RAM and its refusal says so ([`choose`], [`room`]).

use super::DeviceKind;
use crate::ir::SubModel;

/// Rows of the chunks that evaluation and throughput runs feed the network at once.
pub const EVAL_ROWS: usize = 512;

/// A lower bound (bytes) of the memory training `sub` takes with mini-batches of `batch` rows,
/// in f32: every parameter with its gradient and two optimiser moments (Adam's; SGD keeps
/// fewer), and every layer's output (with attention's `[heads, t, t]` scores and weights)
/// for the rows of a training batch (the value, its gradient and what autodiff keeps: three
/// copies) or of an evaluation chunk (two).
pub fn estimate(sub: &SubModel, batch: usize) -> u64 {
    let weights = sub.params.saturating_mul(4 * 4);
    let per_row: u64 = sub.graph.node_weights().map(|l| l.shape.iter().product::<usize>() as u64 + inner(l)).sum();
    let rows = (3 * batch.max(1)).max(2 * EVAL_ROWS) as u64;
    weights.saturating_add(per_row.saturating_mul(rows).saturating_mul(4))
}

/// Values a layer keeps per row beyond its output: attention's scores and weights, two
/// `[heads, t, t]` tensors, which grow with t² and dwarf its `[t, d]` output on long sequences.
fn inner(l: &crate::ir::Layer) -> u64 {
    match (&l.kind, l.shape.first()) {
        (crate::ir::LayerKind::Attention { heads, .. }, Some(t)) => (2 * *heads as u64).saturating_mul((t * t) as u64),
        _ => 0,
    }
}

/// The memory (bytes) the system can still give this process: Linux's `MemAvailable`, and the
/// room left under the cgroup's limit where one is set (containers). `None` where unknown.
pub fn available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let host = meminfo_available(&meminfo)?;
    let read = |f: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{f}")).ok();
    let cgroup = match (read("memory.max"), read("memory.current")) {
        (Some(max), Some(current)) => cgroup_room(&max, &current),
        _ => None,
    };
    Some(cgroup.map_or(host, |c| c.min(host)))
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
fn meminfo_available(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

/// What is left under a cgroup v2 limit (`memory.max`, "max" for none) given `memory.current`.
fn cgroup_room(max: &str, current: &str) -> Option<u64> {
    let max: u64 = max.trim().parse().ok()?;
    let current: u64 = current.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

/// `bytes` for people: 1.5 GiB, 300 MiB.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// Why `sub` cannot be trained here, if the estimate exceeds the memory available.
pub fn refuse(sub: &SubModel, batch: usize, available: u64) -> Option<String> {
    let need = estimate(sub, batch);
    (need > available).then(|| {
        format!(
            "training it needs at least {} ({} parameters, batch {batch}), more than the {} of memory available",
            human(need),
            sub.params,
            human(available)
        )
    })
}

/// The memory a trial may take, and whose it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// What the host has left ([`available`]): the CPU backend's own memory.
    Host(u64),
    /// What the device says its memory is.
    Device(DeviceKind, u64),
    /// What the host has left, for a device that cannot say its own.
    HostFor(DeviceKind, u64),
}

impl Room {
    pub fn bytes(self) -> u64 {
        match self {
            Room::Host(b) | Room::Device(_, b) | Room::HostFor(_, b) => b,
        }
    }

    /// Whose memory it is, for a message: `host RAM`, `the memory of wgpu:0`.
    pub fn whose(self) -> String {
        match self {
            Room::Host(_) => "host RAM".into(),
            Room::Device(d, _) => format!("the memory of {d}"),
            Room::HostFor(d, _) => format!("host RAM ({d} does not report its own memory)"),
        }
    }
}

/// The guard's rule: on the CPU, host RAM; on a GPU, its own memory where the backend says it
/// (`device_memory`), else host RAM, marked as such. `None` when nothing is known.
pub fn choose(device: DeviceKind, device_memory: Option<u64>, host: Option<u64>) -> Option<Room> {
    match (device, device_memory) {
        (DeviceKind::Cpu, _) => host.map(Room::Host),
        (d, Some(m)) => Some(Room::Device(d, m)),
        (d, None) => host.map(|h| Room::HostFor(d, h)),
    }
}

/// [`choose`] for `device` on this machine.
pub fn room(device: DeviceKind) -> Option<Room> {
    let own = if device == DeviceKind::Cpu { None } else { super::device::memory(device) };
    choose(device, own, available())
}

/// Why `sub` cannot be trained in `room`, naming whose memory it is.
pub fn refuse_in(sub: &SubModel, batch: usize, room: Room) -> Option<String> {
    let need = estimate(sub, batch);
    (need > room.bytes()).then(|| {
        format!(
            "training it needs at least {} ({} parameters, batch {batch}), more than the {} of {}",
            human(need),
            sub.params,
            human(room.bytes()),
            room.whose()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_uses_device_memory_where_the_backend_tells_it() {
        let gpu = DeviceKind::Wgpu(1);
        assert_eq!(choose(DeviceKind::Cpu, Some(8), Some(100)), Some(Room::Host(100)));
        assert_eq!(choose(gpu, Some(8 << 30), Some(100)), Some(Room::Device(gpu, 8 << 30)));
        assert_eq!(choose(gpu, None, Some(100)), Some(Room::HostFor(gpu, 100)));
        assert_eq!(choose(DeviceKind::Cuda(0), None, None), None);
        assert_eq!(Room::Device(gpu, 1).whose(), "the memory of wgpu:1");
        assert!(Room::HostFor(DeviceKind::Cuda(0), 1).whose().contains("cuda:0 does not report its own memory"));
        assert_eq!(room(DeviceKind::Cpu), available().map(Room::Host));
    }

    #[test]
    fn meminfo_and_cgroup_readings() {
        let text = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(meminfo_available(text), Some(20_000_000 * 1024));
        assert_eq!(meminfo_available("MemTotal: 1 kB\n"), None);
        assert_eq!(cgroup_room("max\n", "5\n"), None);
        assert_eq!(cgroup_room("1000\n", "300\n"), Some(700));
        assert_eq!(cgroup_room("1000\n", "3000\n"), Some(0));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
