//! Expert trajectories: an agent loop over the gym ([`session`]) with
//! SWE-agent's tools ([`tools`]), and rollouts of a language model over
//! many tasks with rejection sampling into supervised fine-tuning data
//! ([`run`]).
//!
//! An RL harness that brings its own policy drives episodes through
//! [`Session::run`] with its own [`Policy`]; `smith rollout` drives them
//! with a language model through [`Rollout`].

pub mod run;
pub mod session;
pub mod tools;

pub use run::{
    sft_records, traj_id, Rollout, RolloutEvent, RolloutOptions, RolloutSummary, SftRecord, Timing,
    ToolLatency, Trajectory,
};
pub use session::{
    fail_to_pass_files, AgentRun, ErrorCounts, ExitReason, Limits, LmPolicy, Policy, Session,
    Templates, ToolTime,
};
pub use tools::{tool_specs, Observation, Snapshot, ToolLimits, Tools};
