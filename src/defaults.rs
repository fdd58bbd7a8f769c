//! The default encoder, built into the library (and so into the `haad` binary): the canonical
//! encoder in `models/canonical/encoder` (15 canonical joints; trained on MSR Action3D and the
//! Bandai-Namco subset mapped onto the canonical body, `models/canonical/README.md`), with the
//! normalisation its clips had. This is the one place that names it; swap the files here to
//! change the default everywhere. A detector using it maps its clips' layout onto the
//! canonical body ([`default_input`]).

use candle_core::Device;
use haad_detect::InputSpec;
use haad_gcn::EncoderModel;
use haad_motion::{Canonicalizer, Layout, NormalizeConfig, Skeleton};

use crate::error::{HaadError, Result};

const CONFIG: &[u8] = include_bytes!("../models/canonical/encoder/encoder.json");
const WEIGHTS: &[u8] = include_bytes!("../models/canonical/encoder/encoder.safetensors");
const NORMALIZE: &str = include_str!("../models/canonical/encoder/normalize.json");

/// Where the default encoder came from, in words (for messages and docs).
pub const DEFAULT_ENCODER_NAME: &str =
    "built-in canonical encoder (models/canonical/encoder, 15 canonical joints)";

/// The normalisation the default encoder's training clips had.
pub fn default_normalization() -> Result<NormalizeConfig> {
    let cfg: NormalizeConfig =
        serde_json::from_str(NORMALIZE).map_err(|source| HaadError::Json {
            path: "models/canonical/encoder/normalize.json".into(),
            source,
        })?;
    cfg.check()?;
    Ok(cfg)
}

/// The input of a detector that uses the default encoder on raw clips of `layout` with
/// `skeleton` (clips without a frame rate are taken as `source_fps`).
pub fn default_input(
    layout: Layout,
    skeleton: &Skeleton,
    source_fps: Option<f32>,
) -> Result<InputSpec> {
    Ok(InputSpec::canonical(Canonicalizer::new(
        layout,
        skeleton,
        source_fps,
        default_normalization()?,
    )?))
}

/// The default encoder, on `device`.
///
/// The encoder loader reads a folder, so the embedded files are written to a fresh temporary
/// folder, loaded, and the folder removed again.
pub fn default_encoder(device: &Device) -> Result<EncoderModel> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "haad-default-encoder-{}-{nanos}",
        std::process::id()
    ));
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| HaadError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(io(&p))
    };
    let loaded = write("encoder.json", CONFIG)
        .and_then(|_| write("encoder.safetensors", WEIGHTS))
        .and_then(|_| Ok(EncoderModel::load(&dir, device)?));
    let _ = std::fs::remove_dir_all(&dir);
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_encoder_equals_the_files_in_models() {
        let dev = Device::Cpu;
        let built_in = default_encoder(&dev).unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/canonical/encoder");
        let from_files = EncoderModel::load(&dir, &dev).unwrap();
        assert_eq!(
            crate::transfer::encoder_normalization(&dir).unwrap(),
            Some(default_normalization().unwrap())
        );
        assert_eq!(
            haad_detect::Embedder::encoder(built_in),
            haad_detect::Embedder::encoder(from_files)
        );
    }
}
