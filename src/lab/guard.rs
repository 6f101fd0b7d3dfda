//! A guard that owns a lab and tears it down when dropped, also while a test panics (DESIGN.md §5: every test
//! deletes what it created).

use std::ops::{Deref, DerefMut};

use super::{Lab, LabError};

/// Owns a [`Lab`]; dropping it runs `down`.
#[derive(Debug)]
pub struct LabGuard {
    lab: Option<Lab>,
}

impl LabGuard {
    /// Takes ownership of `lab` and records this process as its owner in the state file, so that if the
    /// process dies without dropping the guard (killed by a CI timeout), [`super::sweep_orphans`] removes the lab.
    pub fn new(mut lab: Lab) -> LabGuard {
        if let Err(e) = lab.set_owner() {
            eprintln!("warning: cannot record the owner of lab {}: {e}", lab.spec().tag);
        }
        LabGuard { lab: Some(lab) }
    }

    /// Tears the lab down now and reports errors (Drop can only print them). Returns the namespaces deleted.
    pub fn down(mut self) -> Result<Vec<String>, LabError> {
        match self.lab.take() {
            Some(lab) => lab.down(),
            None => Ok(Vec::new()),
        }
    }
}

impl Deref for LabGuard {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        // Only `down` takes the lab, and it consumes the guard.
        self.lab.as_ref().expect("lab present until down")
    }
}

impl DerefMut for LabGuard {
    fn deref_mut(&mut self) -> &mut Lab {
        self.lab.as_mut().expect("lab present until down")
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Some(lab) = self.lab.take() {
            let tag = lab.spec().tag.clone();
            if let Err(e) = lab.down() {
                eprintln!("warning: tearing down lab {tag} failed: {e} (run `hactl lab down --tag {tag}`)");
            }
        }
    }
}
