//! Browser-to-browser calls (L3): the state machine, the controller that owns every live
//! call, the signaling protocol and ICE servers. The hub carries signaling only; media flows
//! peer to peer between the browsers. Calls to numbers the hub answers itself go to a
//! [`service::HubNumbers`] (the media engine's WebRTC peer, wired by the app).

mod controller;
pub mod ice;
pub mod service;
pub mod signal;
pub mod state;

pub use controller::{Calls, DEVICE_QUEUE, DeviceInfo, Presence, Stats, Stopped};
