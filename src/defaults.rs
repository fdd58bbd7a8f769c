//! The default encoder, built into the library (and so into the `haad` binary): the weights in
//! `models/bandai/encoder` (22 joints, the Bandai-Namco subset's skeleton). This is the one
//! place that names it; swap the files here to change the default everywhere.

use candle_core::Device;
use haad_gcn::EncoderModel;

use crate::error::{HaadError, Result};

const CONFIG: &[u8] = include_bytes!("../models/bandai/encoder/encoder.json");
const WEIGHTS: &[u8] = include_bytes!("../models/bandai/encoder/encoder.safetensors");

/// Where the default encoder came from, in words (for messages and docs).
pub const DEFAULT_ENCODER_NAME: &str =
    "built-in Bandai-Namco encoder (models/bandai/encoder, 22 joints)";

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
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/bandai/encoder");
        let from_files = EncoderModel::load(&dir, &dev).unwrap();
        assert_eq!(
            haad_detect::Embedder::encoder(built_in),
            haad_detect::Embedder::encoder(from_files)
        );
    }
}
