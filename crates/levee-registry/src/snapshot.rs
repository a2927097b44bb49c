//! The memory backend's snapshot file: operator state (toggles, overrides, the degradation
//! setting, policies) that must survive a restart.
//!
//! Written after every operator change, before the change is acknowledged, atomically: the
//! JSON goes to a temporary file in the same directory, is flushed to disk, and is renamed
//! over the old file, so a crash leaves either the old or the new snapshot, never half of one.
//! An unreadable snapshot stops the registry from starting instead of silently starting empty.

use crate::registry::SavedState;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Reads the snapshot; `Ok(None)` when the file does not exist yet.
pub fn load(path: &Path) -> Result<Option<SavedState>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read snapshot {}: {e}", path.display())),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        format!(
            "snapshot {} is not a registry snapshot ({e}): fix or move it away to start empty",
            path.display()
        )
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "snapshot".into());
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, path)?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes the snapshot atomically (temp file + rename), off the async threads.
pub async fn save(path: &Path, state: &SavedState) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        write_atomically(&path, &bytes)
            .map_err(|e| format!("cannot write snapshot {}: {e}", path.display()))
    })
    .await
    .map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use levee_core::fleet::Toggle;
    use levee_registry_client::api::ToggleView;

    #[tokio::test]
    async fn snapshots_round_trip_and_missing_files_are_empty() {
        let dir = std::env::temp_dir().join(format!("levee-snap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("registry.json");
        let _ = std::fs::remove_file(&path);
        assert_eq!(load(&path).unwrap(), None);
        let mut state = SavedState {
            format: 1,
            last_event_id: 42,
            ..SavedState::default()
        };
        state.toggles.insert(
            "t".into(),
            ToggleView {
                toggle: Toggle::Percent { percent: 5 },
                version: 2,
            },
        );
        save(&path, &state).await.unwrap();
        assert_eq!(load(&path).unwrap(), Some(state));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(load(&path).unwrap_err().contains("move it away"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
