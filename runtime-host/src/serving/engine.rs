//! Engine set-up and compilation (with an on-disk cache of compiled components).

use anyhow::{Context, Result, bail};
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
///
/// A cache entry is named by the SHA-256 of the engine's compatibility hash and the component
/// bytes, so a stale entry is never found under a new component's name. Compiled code is
/// loaded only from a directory that this user owns and nobody else can write to (created
/// with mode 0700); otherwise the cache is not used, since a file someone else could have
/// written would be run as native code.
pub fn compile(engine: &Engine, bytes: &[u8], cache_dir: Option<&Path>) -> Result<Component> {
    let cache = cache_dir.and_then(|dir| match private_dir(dir) {
        Ok(()) => Some(dir),
        Err(error) => {
            tracing::warn!(dir = %dir.display(), error = %format!("{error:#}"), "not using the compilation cache");
            None
        }
    });
    let Some(dir) = cache else {
        return Component::new(engine, bytes)
            .map_err(anyhow::Error::from)
            .context("compiling the component");
    };
    let path = dir.join(cache_file_name(engine, bytes));
    if path.exists() {
        // SAFETY: the file carries the SHA-256 of this engine configuration and of these
        // component bytes in its name, and lies in a directory only this user can write to
        // (checked above), so it was written by `Component::serialize` for exactly this
        // compilation; wasmtime still checks the header and version.
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
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, component.serialize()?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// `<sha256 hex>.cwasm` over the engine's compatibility hash and the component bytes.
fn cache_file_name(engine: &Engine, bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let digest = Sha256::new()
        .chain_update(engine_hash.finish().to_le_bytes())
        .chain_update((bytes.len() as u64).to_le_bytes())
        .chain_update(bytes)
        .finalize();
    let mut name = String::with_capacity(70);
    for byte in digest {
        name.push_str(&format!("{byte:02x}"));
    }
    name.push_str(".cwasm");
    name
}

/// Creates `dir` (mode 0700) if needed and checks that only this user can write to it.
fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let meta =
        std::fs::symlink_metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if meta.uid() != uid {
        bail!(
            "{} belongs to another user (uid {})",
            dir.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "{} can be written by others (mode {:o}); `chmod go-w` it",
            dir.display(),
            meta.mode() & 0o777
        );
    }
    Ok(())
}

/// The default cache directory: `$XDG_CACHE_HOME/runtime-host` or `~/.cache/runtime-host`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("runtime-host"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rh-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_cache_directory_is_created_private_and_others_writable_ones_are_refused() {
        let dir = temp_dir("private");
        private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = private_dir(&dir).unwrap_err();
        assert!(
            format!("{error:#}").contains("can be written by others"),
            "{error:#}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn entries_are_named_by_sha256_of_engine_and_bytes() {
        let engine = Engine::default();
        let a = cache_file_name(&engine, b"component a");
        assert_eq!(a.len(), 64 + ".cwasm".len());
        assert!(a[..64].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, cache_file_name(&engine, b"component a"));
        assert_ne!(a, cache_file_name(&engine, b"component b"));
    }

    #[test]
    fn a_foreign_file_under_a_wrong_name_is_never_loaded() {
        // A file planted in the cache under any other name is not looked at: compile() only
        // opens the name derived from the bytes it compiles.
        let dir = temp_dir("foreign");
        private_dir(&dir).unwrap();
        std::fs::write(dir.join("0000.cwasm"), b"not code").unwrap();
        let engine = Engine::default();
        let wat = b"(component)";
        let component = compile(&engine, wat, Some(&dir)).unwrap();
        drop(component);
        // The entry for these bytes exists now and loads again.
        assert!(dir.join(cache_file_name(&engine, wat)).exists());
        compile(&engine, wat, Some(&dir)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
