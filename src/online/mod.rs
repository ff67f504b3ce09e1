//! The wallet online: provisioning, replenishment, top-up and sync with the backend.
