//! Engine set-up and compilation (with an on-disk cache of compiled components).

use anyhow::{Context, Result};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; a guest yields at each tick so request deadlines fire
/// even while it spins in a loop.
pub const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(20);

/// Engine limits derived from the command line.
pub struct EngineLimits {
    /// Largest linear memory of one instance, in bytes.
    pub max_memory: u64,
    /// Component instances alive at once (workers).
    pub max_instances: u32,
    /// Write `/tmp/perf-<pid>.map` so `perf` can name JIT-compiled guest functions.
    pub perfmap: bool,
}

/// Builds the engine: component model with async, epoch interruption for deadlines, and the
/// pooling allocator (fast instantiation) when the machine has the address space for it.
pub fn new_engine(limits: &EngineLimits) -> Result<Engine> {
    let pooled = {
        let mut config = base_config(limits.perfmap);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(limits.max_instances);
        // A composed chain holds a few core instances and memories per component instance.
        pool.max_core_instances_per_component(64);
        pool.max_memories_per_component(16);
        pool.max_tables_per_component(32);
        pool.total_core_instances(limits.max_instances * 16);
        pool.total_memories(limits.max_instances * 4);
        pool.total_tables(limits.max_instances * 8);
        pool.total_stacks(limits.max_instances * 4);
        pool.max_memory_size(limits.max_memory as usize);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        Engine::new(&config)
    };
    match pooled {
        Ok(engine) => Ok(engine),
        Err(error) => {
            tracing::warn!(%error, "pooling allocator unavailable, using on-demand allocation");
            Engine::new(&base_config(limits.perfmap))
                .map_err(anyhow::Error::from)
                .context("creating the wasmtime engine")
        }
    }
}

fn base_config(perfmap: bool) -> Config {
    let mut config = Config::new();
    if perfmap {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config.epoch_interruption(true);
    config
}

/// Compiles `bytes`, or loads the result of an earlier compilation from `cache_dir`.
pub fn compile(engine: &Engine, bytes: &[u8], cache_dir: Option<&Path>) -> Result<Component> {
    let Some(dir) = cache_dir else {
        return Component::new(engine, bytes)
            .map_err(anyhow::Error::from)
            .context("compiling the component");
    };
    let path = cache_path(engine, bytes, dir);
    if path.exists() {
        // SAFETY: the file was written by `Component::serialize` of this very engine
        // configuration (its compatibility hash is part of the file name) into a directory
        // of this tool's own; wasmtime still checks the header and version.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "ignoring an unusable cache entry")
            }
        }
    }
    let component = Component::new(engine, bytes)
        .map_err(anyhow::Error::from)
        .context("compiling the component")?;
    if let Err(error) = store(&component, &path) {
        tracing::warn!(path = %path.display(), error = %format!("{error:#}"), "could not write the compilation cache");
    }
    Ok(component)
}

fn store(component: &Component, path: &Path) -> Result<()> {
    std::fs::create_dir_all(path.parent().unwrap())?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, component.serialize()?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn cache_path(engine: &Engine, bytes: &[u8], dir: &Path) -> PathBuf {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    bytes.hash(&mut hasher);
    dir.join(format!("{:016x}-{}.cwasm", hasher.finish(), bytes.len()))
}

/// The default cache directory: `$XDG_CACHE_HOME/runtime-host` or `~/.cache/runtime-host`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("runtime-host"))
}
