//! The release feed (R4): one entry per module and learner with its release
//! date, which Steplab pages through by date.

use super::Curriculum;
use super::learner::Learner;
use super::release;
use chrono::NaiveDate;

/// One entry of the release feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub participant_id: String,
    pub module_id: String,
    pub release_date: NaiveDate,
    pub optional: bool,
}

/// Where a page of the feed continues: after this (date, participant, module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPosition {
    pub release_date: NaiveDate,
    pub participant_id: String,
    pub module_id: String,
}

/// The feed entries of a learner's schedule as known now (R2, R4): every
/// module with a release date.
pub fn releases(curriculum: &Curriculum, learner: &Learner) -> Vec<Release> {
    release::schedule(curriculum.programme(learner.programme), learner.facts())
        .modules()
        .iter()
        .filter_map(|m| {
            Some(Release {
                participant_id: learner.participant_id.clone(),
                module_id: m.module.module_id.clone(),
                release_date: m.release_date?,
                optional: m.optional,
            })
        })
        .collect()
}
