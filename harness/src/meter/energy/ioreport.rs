//! Apple Silicon IOReport "Energy Model" channels, readable without root
//! (docs/reference/hardware.md §3 [E10, E10b]). A private API: not wired up yet, so on every
//! OS this source reports why it is unavailable and the next one is used.

use super::EnergyError;

pub fn unavailable() -> EnergyError {
    if cfg!(target_os = "macos") {
        EnergyError::absent("IOReport energy channels are not implemented yet (private macOS API)")
    } else {
        EnergyError::absent("IOReport exists only on macOS")
    }
}
