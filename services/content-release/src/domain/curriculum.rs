//! R1: each programme is an ordered list of self-study modules, each due a
//! number of days after the participant's release start, plus clinics (any
//! order) and conferences (in order). The curriculum is data: the built-in
//! default ships in `curriculum/default.json`, and a deployment may load its
//! own file (`STEPLAB_CURRICULUM_FILE`). A file is checked in full at
//! start-up and a fault names the file and where in it.

use super::Programme;
use serde::{Deserialize, Serialize};

/// The built-in curriculum: two-year ECT and mentor programmes, four strands,
/// six terms, one module a fortnight in term time.
pub const DEFAULT_JSON: &str = include_str!("../../curriculum/default.json");

/// The longest programme a file may describe (about ten years), so that a
/// typo cannot push dates past the calendar.
pub const MAX_LENGTH_DAYS: i64 = 3660;

/// Terms of a programme run from 1 to this (three a year over two years).
pub const MAX_TERM: i32 = 6;

/// A module of a programme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub module_id: String,
    pub title: String,
    pub strand: String,
    pub term: i32,
    pub release_offset_days: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Clinic,
    Conference,
}

/// A clinic or conference; `sequence` counts from 1 within its kind and is
/// the order conferences must be attended in (D11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_id: String,
    pub title: String,
    pub kind: EventKind,
    pub sequence: u32,
}

/// One programme's curriculum, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgrammeCurriculum {
    pub programme: Programme,
    /// Days from the release start to the planned end, before deferrals.
    pub length_days: i64,
    /// In release order (non-decreasing offsets).
    pub modules: Vec<Module>,
    pub clinics: Vec<Event>,
    pub conferences: Vec<Event>,
}

impl ProgrammeCurriculum {
    pub fn module(&self, module_id: &str) -> Option<&Module> {
        self.modules.iter().find(|m| m.module_id == module_id)
    }

    pub fn event(&self, event_id: &str) -> Option<&Event> {
        self.clinics.iter().chain(&self.conferences).find(|e| e.event_id == event_id)
    }

    /// The conference that must be attended before `conference` (D11).
    pub fn conference_before(&self, conference: &Event) -> Option<&Event> {
        let previous = conference.sequence.checked_sub(1)?;
        self.conferences.iter().find(|c| c.sequence == previous)
    }
}

/// The whole curriculum of a deployment: both programmes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Curriculum {
    ect: ProgrammeCurriculum,
    mentor: ProgrammeCurriculum,
    /// The file's content in one canonical form: a change of it means the
    /// stored release feed must be recomputed.
    canonical: String,
}

/// A curriculum file that cannot be used, and where the fault is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("curriculum {file}: {location}: {problem}")]
pub struct CurriculumError {
    /// The file path, or "built-in default".
    pub file: String,
    /// `line L, column C`, or the path of the faulty field, e.g.
    /// `programmes[0].modules[3].release_offset_days`.
    pub location: String,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    strands: Vec<String>,
    programmes: Vec<FileProgramme>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProgramme {
    programme: String,
    length_days: i64,
    modules: Vec<FileModule>,
    #[serde(default)]
    clinics: Vec<FileEvent>,
    #[serde(default)]
    conferences: Vec<FileEvent>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModule {
    module_id: String,
    title: String,
    strand: String,
    term: i32,
    release_offset_days: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEvent {
    event_id: String,
    title: String,
}

impl Curriculum {
    /// The built-in default.
    pub fn built_in() -> Result<Curriculum, CurriculumError> {
        Curriculum::parse("built-in default", DEFAULT_JSON)
    }

    /// Parses and checks a curriculum file's text; `source` names it in errors.
    pub fn parse(source: &str, text: &str) -> Result<Curriculum, CurriculumError> {
        let fault = |location: String, problem: String| CurriculumError { file: source.to_owned(), location, problem };
        let doc: FileDoc = serde_json::from_str(text).map_err(|e| {
            // serde_json's message ends with "at line L column C": lift it out.
            let message = e.to_string();
            let problem = message.rsplit_once(" at line ").map_or(message.as_str(), |(head, _)| head).to_owned();
            fault(
                format!("line {}, column {}", e.line(), e.column()),
                format!("{problem} (the file must be JSON as in the built-in curriculum/default.json)"),
            )
        })?;
        let canonical = serde_json::to_string(&doc).map_err(|e| fault("(whole file)".into(), e.to_string()))?;
        let mut checker = Checker { strands: &doc.strands, ids: std::collections::HashMap::new() };
        if doc.strands.is_empty() {
            return Err(fault("strands".into(), "lists no strand".into()));
        }
        for (i, strand) in doc.strands.iter().enumerate() {
            checker.text(strand).map_err(|p| fault(format!("strands[{i}]"), p))?;
        }
        let mut ect = None;
        let mut mentor = None;
        for (i, file) in doc.programmes.iter().enumerate() {
            let at = format!("programmes[{i}]");
            let programme = checker.programme(&at, file).map_err(|(l, p)| fault(l, p))?;
            let slot = match programme.programme {
                Programme::Ect => &mut ect,
                Programme::Mentor => &mut mentor,
            };
            if slot.is_some() {
                return Err(fault(
                    format!("{at}.programme"),
                    format!("`{}` is described twice: keep one", file.programme),
                ));
            }
            *slot = Some(programme);
        }
        let missing = |p: Programme| {
            fault(
                "programmes".into(),
                format!(
                    "no `{}` programme: a deployment enrols ECTs and mentors, so the file describes both",
                    p.as_str()
                ),
            )
        };
        Ok(Curriculum {
            ect: ect.ok_or_else(|| missing(Programme::Ect))?,
            mentor: mentor.ok_or_else(|| missing(Programme::Mentor))?,
            canonical,
        })
    }

    pub fn programme(&self, programme: Programme) -> &ProgrammeCurriculum {
        match programme {
            Programme::Ect => &self.ect,
            Programme::Mentor => &self.mentor,
        }
    }

    pub fn canonical(&self) -> &str {
        &self.canonical
    }
}

/// Checks one file's fields, remembering every id seen so far.
struct Checker<'a> {
    strands: &'a [String],
    /// Module and event ids are unique across the file: Steplab and DP
    /// systems name them without saying which programme they belong to.
    ids: std::collections::HashMap<String, String>,
}

type Fault = (String, String);

impl Checker<'_> {
    fn text(&self, value: &str) -> Result<(), String> {
        if value.trim().is_empty() {
            return Err("is empty".into());
        }
        if value.chars().count() > 200 || value.chars().any(char::is_control) {
            return Err("must be at most 200 characters without control characters".into());
        }
        Ok(())
    }

    fn id(&mut self, at: &str, value: &str) -> Result<String, Fault> {
        if value.is_empty() || value.len() > 100 || !value.chars().all(|c| c.is_ascii_graphic()) {
            return Err((
                at.to_owned(),
                format!("`{value}` is not an id: use 1 to 100 printable ASCII characters without spaces"),
            ));
        }
        if let Some(first) = self.ids.insert(value.to_owned(), at.to_owned()) {
            return Err((
                at.to_owned(),
                format!("`{value}` is already the id at {first}: ids must be unique in the file"),
            ));
        }
        Ok(value.to_owned())
    }

    fn programme(&mut self, at: &str, file: &FileProgramme) -> Result<ProgrammeCurriculum, Fault> {
        let programme = Programme::parse(&file.programme).ok_or_else(|| {
            (format!("{at}.programme"), format!("`{}` is not a programme: use \"ect\" or \"mentor\"", file.programme))
        })?;
        if !(1..=MAX_LENGTH_DAYS).contains(&file.length_days) {
            return Err((
                format!("{at}.length_days"),
                format!("{} is outside 1..={MAX_LENGTH_DAYS}", file.length_days),
            ));
        }
        if file.modules.is_empty() {
            return Err((format!("{at}.modules"), "lists no module".into()));
        }
        let mut modules = Vec::with_capacity(file.modules.len());
        let mut previous_offset = 0;
        for (i, m) in file.modules.iter().enumerate() {
            let at = format!("{at}.modules[{i}]");
            let module_id = self.id(&format!("{at}.module_id"), &m.module_id)?;
            self.text(&m.title).map_err(|p| (format!("{at}.title"), p))?;
            if !self.strands.contains(&m.strand) {
                return Err((
                    format!("{at}.strand"),
                    format!("`{}` is not one of the file's strands ({})", m.strand, self.strands.join(", ")),
                ));
            }
            if !(1..=MAX_TERM).contains(&m.term) {
                return Err((format!("{at}.term"), format!("{} is outside 1..={MAX_TERM}", m.term)));
            }
            if !(0..file.length_days).contains(&m.release_offset_days) {
                return Err((
                    format!("{at}.release_offset_days"),
                    format!("{} is outside the programme (0..{} days)", m.release_offset_days, file.length_days),
                ));
            }
            if m.release_offset_days < previous_offset {
                return Err((
                    format!("{at}.release_offset_days"),
                    format!(
                        "{} is before the previous module's {previous_offset}: list modules in release order",
                        m.release_offset_days
                    ),
                ));
            }
            previous_offset = m.release_offset_days;
            modules.push(Module {
                module_id,
                title: m.title.trim().to_owned(),
                strand: m.strand.clone(),
                term: m.term,
                release_offset_days: m.release_offset_days,
            });
        }
        let clinics = self.events(&format!("{at}.clinics"), &file.clinics, EventKind::Clinic)?;
        let conferences = self.events(&format!("{at}.conferences"), &file.conferences, EventKind::Conference)?;
        Ok(ProgrammeCurriculum { programme, length_days: file.length_days, modules, clinics, conferences })
    }

    fn events(&mut self, at: &str, file: &[FileEvent], kind: EventKind) -> Result<Vec<Event>, Fault> {
        let mut events = Vec::with_capacity(file.len());
        for (i, e) in file.iter().enumerate() {
            let at = format!("{at}[{i}]");
            let event_id = self.id(&format!("{at}.event_id"), &e.event_id)?;
            self.text(&e.title).map_err(|p| (format!("{at}.title"), p))?;
            let sequence = u32::try_from(i + 1).map_err(|_| (at.clone(), "too many events".to_owned()))?;
            events.push(Event { event_id, title: e.title.trim().to_owned(), kind, sequence });
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn built_in() -> Curriculum {
        Curriculum::built_in().expect("the built-in curriculum is valid")
    }

    #[test]
    fn r1_the_built_in_curriculum_is_valid_and_describes_both_programmes() {
        let c = built_in();
        assert_eq!(c.programme(Programme::Ect).programme, Programme::Ect);
        assert_eq!(c.programme(Programme::Mentor).programme, Programme::Mentor);
    }

    #[test]
    fn r1_the_ect_programme_runs_two_years_over_four_strands_and_six_terms() {
        let c = built_in();
        for programme in Programme::ALL {
            let p = c.programme(programme);
            assert!((728..=731).contains(&p.length_days), "about two years");
            let strands: std::collections::BTreeSet<&str> = p.modules.iter().map(|m| m.strand.as_str()).collect();
            assert_eq!(
                strands.into_iter().collect::<Vec<_>>(),
                ["Behaviour", "Curriculum and Assessment", "Instruction", "Professional Practice"]
            );
            let terms: std::collections::BTreeSet<i32> = p.modules.iter().map(|m| m.term).collect();
            assert_eq!(terms.into_iter().collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
        }
    }

    #[test]
    fn r1_modules_come_one_a_fortnight_in_term_time() {
        let c = built_in();
        for programme in Programme::ALL {
            let mut by_term: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
            for m in &c.programme(programme).modules {
                by_term.entry(m.term).or_default().push(m.release_offset_days);
            }
            for (term, offsets) in by_term {
                assert!(offsets.len() >= 5, "term {term} has {} modules", offsets.len());
                for pair in offsets.windows(2) {
                    assert_eq!(pair[1] - pair[0], 14, "fortnightly within term {term}");
                }
            }
        }
    }

    #[test]
    fn r1_ects_have_six_clinics_and_three_ordered_conferences_mentors_three_and_two() {
        let c = built_in();
        let ect = c.programme(Programme::Ect);
        assert_eq!((ect.clinics.len(), ect.conferences.len()), (6, 3));
        let mentor = c.programme(Programme::Mentor);
        assert_eq!((mentor.clinics.len(), mentor.conferences.len()), (3, 2));
        let order: Vec<u32> = ect.conferences.iter().map(|e| e.sequence).collect();
        assert_eq!(order, [1, 2, 3]);
        assert_eq!(ect.conference_before(&ect.conferences[1]).map(|e| e.sequence), Some(1));
        assert_eq!(ect.conference_before(&ect.conferences[0]), None);
    }

    fn with(f: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut doc: serde_json::Value = serde_json::from_str(DEFAULT_JSON).expect("json");
        f(&mut doc);
        serde_json::to_string_pretty(&doc).expect("json")
    }

    #[test]
    fn r1_a_file_that_is_not_json_says_which_line() {
        let err = Curriculum::parse("/etc/steplab/curriculum.json", "{\n  \"strands\": [\n  oops\n")
            .expect_err("broken json");
        assert_eq!(err.file, "/etc/steplab/curriculum.json");
        assert!(err.location.starts_with("line 3,"), "{err}");
        assert!(err.to_string().contains("/etc/steplab/curriculum.json"), "{err}");
    }

    #[test]
    fn r1_a_misspelt_field_is_refused_with_its_line() {
        let text = DEFAULT_JSON.replacen("\"title\"", "\"titel\"", 1);
        let err = Curriculum::parse("f.json", &text).expect_err("unknown field");
        assert!(err.problem.contains("titel"), "{err}");
        assert!(err.location.starts_with("line 8,"), "{err}");
    }

    #[test]
    fn r1_a_fault_in_a_module_names_its_field() {
        let text = with(|doc| doc["programmes"][0]["modules"][3]["release_offset_days"] = 1.into());
        let err = Curriculum::parse("f.json", &text).expect_err("out of order");
        assert_eq!(err.location, "programmes[0].modules[3].release_offset_days");
        let text = with(|doc| doc["programmes"][1]["modules"][0]["strand"] = "Behavior".into());
        let err = Curriculum::parse("f.json", &text).expect_err("unknown strand");
        assert_eq!(err.location, "programmes[1].modules[0].strand");
        let text = with(|doc| doc["programmes"][0]["modules"][0]["term"] = 7.into());
        let err = Curriculum::parse("f.json", &text).expect_err("term 7");
        assert_eq!(err.location, "programmes[0].modules[0].term");
    }

    #[test]
    fn r1_ids_are_unique_across_the_file() {
        let text = with(|doc| doc["programmes"][1]["clinics"][0]["event_id"] = "ect-01".into());
        let err = Curriculum::parse("f.json", &text).expect_err("duplicate id");
        assert_eq!(err.location, "programmes[1].clinics[0].event_id");
        assert!(err.problem.contains("programmes[0].modules[0].module_id"), "{err}");
    }

    #[test]
    fn r1_both_programmes_are_required_once() {
        let text = with(|doc| {
            if let Some(list) = doc["programmes"].as_array_mut() {
                list.pop();
            }
        });
        let err = Curriculum::parse("f.json", &text).expect_err("no mentor");
        assert!(err.problem.contains("mentor"), "{err}");
        let text = with(|doc| doc["programmes"][1]["programme"] = "ect".into());
        let err = Curriculum::parse("f.json", &text).expect_err("ect twice");
        assert_eq!(err.location, "programmes[1].programme");
    }

    #[test]
    fn r1_the_canonical_form_ignores_layout() {
        let reformatted = with(|_| {});
        assert_eq!(Curriculum::parse("a", &reformatted).expect("valid").canonical(), built_in().canonical());
    }
}
