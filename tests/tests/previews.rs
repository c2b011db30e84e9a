//! PreviewCommands on content release and payments over real gRPC, on
//! SQLite and on PostgreSQL (issue 16, item 5: the peers' part of the dry
//! run): a preview answers what the commands would do to each participant
//! they name, and leaves everything as it was. "Today" is pinned to
//! 2026-11-28.

use std::time::Instant;
use steplab_platform::auth::Role;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::content::v1::release_command::Command as ReleaseCommand;
use steplab_proto::steplab::payments::v1 as payments;
use steplab_proto::steplab::payments::v1::accrual_command::Command as AccrualCommand;
use steplab_tests::receivers::{
    accrual, content_client, enrol_learner, enrol_payee, fields, hold, new_id, on, payments_client, release_state,
    suspension,
};
use steplab_tests::{Content, Payments, Stack, on_both_backends};
use tonic::Code;

// ---- content release ----

fn deferral(participant: &str, from: &str, until: &str) -> content::PlaceHoldRequest {
    hold(participant, content::HoldKind::Deferral, from, until)
}

fn release_commands(commands: Vec<ReleaseCommand>) -> content::PreviewCommandsRequest {
    content::PreviewCommandsRequest {
        commands: commands.into_iter().map(|c| content::ReleaseCommand { command: Some(c) }).collect(),
        as_of: None,
    }
}

async fn enrolled_learner(client: &mut Content) -> String {
    let participant = new_id();
    client.enrol_learner(enrol_learner(&participant)).await.expect("enrol");
    participant
}

/// The outlook's *_after fields as GetReleaseState answers them.
fn after_of(state: &content::GetReleaseStateResponse) -> content::LearnerOutlook {
    content::LearnerOutlook {
        participant_id: state.participant_id.clone(),
        enrolled_before: true,
        next_module_after: state.next_module.clone(),
        planned_end_date_after: state.planned_end_date,
        access_after: state.access,
        active_holds_after: state.active_holds.clone(),
        schedule_after: state.schedule.clone(),
        ..Default::default()
    }
}

fn only_after(outlook: &content::LearnerOutlook) -> content::LearnerOutlook {
    content::LearnerOutlook {
        next_module_before: None,
        planned_end_date_before: None,
        access_before: 0,
        ..outlook.clone()
    }
}

async fn content_previewing_a_deferral_moves_the_next_module_past_it_and_changes_nothing(stack: &Stack) {
    let mut client = content_client(stack, Role::Service).await;
    let participant = enrolled_learner(&mut client).await;
    let before = release_state(&mut client, &participant).await.expect("state before");
    let hold = deferral(&participant, "2026-11-28", "2027-04-01");

    let preview = client
        .preview_commands(release_commands(vec![ReleaseCommand::PlaceHold(hold.clone())]))
        .await
        .expect("preview")
        .into_inner();
    assert_eq!(preview.outlooks.len(), 1, "{preview:?}");
    let outlook = &preview.outlooks[0];
    assert!(outlook.enrolled_before);
    assert_eq!(outlook.next_module_before, before.next_module);
    let next_after = outlook.next_module_after.clone().expect("a next module after the deferral");
    let day = |d: Option<Date>| d.map(|d| (d.year, d.month, d.day)).expect("date");
    assert!(day(next_after.release_date) >= (2027, 4, 1), "{next_after:?} is released during the deferral");
    assert_eq!(outlook.active_holds_after.len(), 1);
    assert_eq!(outlook.active_holds_after[0].hold_id, hold.hold_id);
    assert_ne!(outlook.planned_end_date_after, outlook.planned_end_date_before);

    // Nothing persisted.
    assert_eq!(release_state(&mut client, &participant).await.expect("state after preview"), before);

    // The real command gives the state the preview foresaw.
    client.place_hold(hold.clone()).await.expect("place hold");
    let held = release_state(&mut client, &participant).await.expect("state after the hold");
    assert_eq!(after_of(&held), only_after(outlook));

    // Previewing the command again: its key was applied, so it is a
    // duplicate and changes nothing.
    let again = client
        .preview_commands(release_commands(vec![ReleaseCommand::PlaceHold(hold)]))
        .await
        .expect("preview of an applied command")
        .into_inner();
    assert_eq!(again.outlooks[0].next_module_before, again.outlooks[0].next_module_after);
    assert_eq!(again.outlooks[0].next_module_after, held.next_module);
}

async fn content_previewing_the_enrolment_of_an_unknown_learner(stack: &Stack) {
    let mut client = content_client(stack, Role::Service).await;
    let participant = new_id();
    let enrol = enrol_learner(&participant);
    let preview = client
        .preview_commands(release_commands(vec![
            ReleaseCommand::EnrolLearner(enrol.clone()),
            ReleaseCommand::PlaceHold(deferral(&participant, "2026-11-28", "2027-01-04")),
        ]))
        .await
        .expect("preview")
        .into_inner();
    assert_eq!(preview.outlooks.len(), 1, "{preview:?}");
    let outlook = &preview.outlooks[0];
    assert_eq!(outlook.participant_id, participant);
    assert!(!outlook.enrolled_before);
    assert_eq!((outlook.next_module_before.as_ref(), outlook.planned_end_date_before), (None, None));
    assert_eq!(outlook.access_before, content::Access::Unspecified as i32);
    assert!(outlook.next_module_after.is_some());
    assert_eq!(outlook.access_after, content::Access::Granted as i32);
    assert_eq!(outlook.active_holds_after.len(), 1);
    assert!(!outlook.schedule_after.is_empty());
    let status = release_state(&mut client, &participant).await.expect_err("still not enrolled");
    assert_eq!(status.code(), Code::NotFound);
}

async fn content_a_bad_command_is_invalid_argument_naming_its_index(stack: &Stack) {
    let mut client = content_client(stack, Role::Service).await;
    let participant = enrolled_learner(&mut client).await;
    let before = release_state(&mut client, &participant).await.expect("state before");
    let mut bad = deferral(&participant, "2026-12-01", "2027-01-04");
    bad.until = None;
    let status = client
        .preview_commands(release_commands(vec![
            ReleaseCommand::PlaceHold(deferral(&participant, "2026-12-01", "2027-01-04")),
            ReleaseCommand::PlaceHold(bad),
        ]))
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(fields(&status), ["commands[1].place_hold.until"]);

    let mut none_set = release_commands(vec![]);
    none_set.commands.push(content::ReleaseCommand { command: None });
    let status = client.preview_commands(none_set).await.expect_err("no command");
    assert_eq!(fields(&status), ["commands[0].command"]);

    let status = client.preview_commands(release_commands(vec![])).await.expect_err("empty");
    assert_eq!((status.code(), fields(&status)), (Code::InvalidArgument, vec!["commands".to_string()]));

    let too_many =
        (0..101).map(|_| ReleaseCommand::PlaceHold(deferral(&participant, "2026-12-01", "2027-01-04"))).collect();
    let status = client.preview_commands(release_commands(too_many)).await.expect_err("too many");
    assert_eq!((status.code(), fields(&status)), (Code::InvalidArgument, vec!["commands".to_string()]));

    // A command refused when run names its place in the list.
    let stranger = new_id();
    let status = client
        .preview_commands(release_commands(vec![
            ReleaseCommand::PlaceHold(deferral(&participant, "2026-12-01", "2027-01-04")),
            ReleaseCommand::PlaceHold(deferral(&stranger, "2026-12-01", "2027-01-04")),
        ]))
        .await
        .expect_err("not enrolled");
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().starts_with("commands[1] (PlaceHold)"), "{}", status.message());

    assert_eq!(release_state(&mut client, &participant).await.expect("state after"), before);
}

async fn content_an_ecf_lead_may_not_preview(stack: &Stack) {
    let mut service = content_client(stack, Role::Service).await;
    let participant = enrolled_learner(&mut service).await;
    let dp = new_id();
    let mut lead = stack.content(Some(&stack.token(Role::EcfLead, None, &[&dp]))).await;
    let status = lead
        .preview_commands(release_commands(vec![ReleaseCommand::PlaceHold(deferral(
            &participant,
            "2026-12-01",
            "2027-01-04",
        ))]))
        .await
        .expect_err("denied");
    assert_eq!(status.code(), Code::PermissionDenied);
    // The same policy as the commands: only the participant service sends
    // them, so an admin is refused the preview as they are the command.
    let mut admin = content_client(stack, Role::Admin).await;
    let hold = deferral(&participant, "2026-12-01", "2027-01-04");
    let previewed = admin
        .preview_commands(release_commands(vec![ReleaseCommand::PlaceHold(hold.clone())]))
        .await
        .expect_err("an admin may not preview");
    let sent = admin.place_hold(hold).await.expect_err("an admin may not send");
    assert_eq!((previewed.code(), sent.code()), (Code::PermissionDenied, Code::PermissionDenied));
}

async fn content_a_ten_command_preview_takes(stack: &Stack) {
    let mut client = content_client(stack, Role::Service).await;
    let participants: Vec<String> = (0..5).map(|_| new_id()).collect();
    let commands: Vec<ReleaseCommand> = participants
        .iter()
        .flat_map(|p| {
            [
                ReleaseCommand::EnrolLearner(enrol_learner(p)),
                ReleaseCommand::PlaceHold(deferral(p, "2026-12-01", "2027-04-01")),
            ]
        })
        .collect();
    let request = release_commands(commands);
    // The first call warms the connection.
    client.preview_commands(request.clone()).await.expect("preview");
    let started = Instant::now();
    let runs = 5;
    for _ in 0..runs {
        let preview = client.preview_commands(request.clone()).await.expect("preview").into_inner();
        assert_eq!(preview.outlooks.len(), 5);
    }
    println!("content: a 10-command preview took {:?} on average", started.elapsed() / runs);
}

// ---- payments ----

fn accrual_commands(commands: Vec<AccrualCommand>, as_of: &str) -> payments::PreviewCommandsRequest {
    payments::PreviewCommandsRequest {
        commands: commands.into_iter().map(|c| payments::AccrualCommand { command: Some(c) }).collect(),
        as_of: on(as_of),
    }
}

/// An ECT enrolled in 2025 who started (engaged in the started window).
async fn started_payee(client: &mut Payments) -> String {
    let participant = new_id();
    client.enrol_payee(enrol_payee(&participant)).await.expect("enrol payee");
    client
        .record_engagement(payments::RecordEngagementRequest {
            participant_id: participant.clone(),
            occurred_on: on("2025-09-10"),
            kind: payments::EngagementKind::ModuleCompleted as i32,
            idempotency_key: new_id(),
            ..Default::default()
        })
        .await
        .expect("engagement");
    participant
}

async fn payments_previewing_a_suspension_shows_the_state_and_windows_and_changes_nothing(stack: &Stack) {
    let mut client = payments_client(stack, Role::Service).await;
    let participant = started_payee(&mut client).await;
    let as_of = "2027-01-15";
    let before = accrual(&mut client, &participant, as_of).await.expect("accrual before");
    let suspend = suspension(&participant, "2026-12-01", "2027-06-01");

    let preview = client
        .preview_commands(accrual_commands(vec![AccrualCommand::SuspendAccrual(suspend.clone())], as_of))
        .await
        .expect("preview")
        .into_inner();
    assert_eq!(preview.outlooks.len(), 1, "{preview:?}");
    let outlook = &preview.outlooks[0];
    assert!(outlook.enrolled_before);
    assert_eq!(outlook.state_before, payments::AccrualState::Accruing as i32);
    assert_eq!(outlook.state_after, payments::AccrualState::Suspended as i32);
    assert_eq!(outlook.total_pence_before, before.total_pence);
    // Affected: the windows the suspension overlaps, and those it brings
    // into force or moves (continuation windows, F3).
    let day = |d: Option<Date>| d.map(|d| (d.year, d.month, d.day)).expect("date");
    let expected: Vec<&str> = outlook
        .windows_after
        .iter()
        .filter(|w| {
            let overlaps = day(w.start_date) < (2027, 6, 1) && day(w.end_date) >= (2026, 12, 1);
            overlaps || !before.windows.contains(w)
        })
        .map(|w| w.window_id.as_str())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(outlook.affected_window_ids, expected);

    // Nothing persisted.
    assert_eq!(accrual(&mut client, &participant, as_of).await.expect("accrual after preview"), before);

    // The real command gives the accrual the preview foresaw.
    client.suspend_accrual(suspend).await.expect("suspend");
    let suspended = accrual(&mut client, &participant, as_of).await.expect("accrual after suspending");
    assert_eq!(
        (suspended.state, suspended.total_pence, &suspended.windows, suspended.current_schedule.as_str()),
        (outlook.state_after, outlook.total_pence_after, &outlook.windows_after, outlook.schedule_after.as_str())
    );
}

async fn payments_previewing_the_enrolment_of_an_unknown_payee(stack: &Stack) {
    let mut client = payments_client(stack, Role::Service).await;
    let participant = new_id();
    let preview = client
        .preview_commands(accrual_commands(vec![AccrualCommand::EnrolPayee(enrol_payee(&participant))], "2026-11-28"))
        .await
        .expect("preview")
        .into_inner();
    assert_eq!(preview.outlooks.len(), 1, "{preview:?}");
    let outlook = &preview.outlooks[0];
    assert_eq!(outlook.participant_id, participant);
    assert!(!outlook.enrolled_before);
    assert_eq!(outlook.state_before, payments::AccrualState::Unspecified as i32);
    assert_eq!(outlook.state_after, payments::AccrualState::Accruing as i32);
    assert_eq!(outlook.schedule_after, "ecf-standard-september");
    assert!(!outlook.windows_after.is_empty());
    assert_eq!((outlook.total_pence_before, outlook.total_pence_after), (0, 0));
    let status = accrual(&mut client, &participant, "2026-11-28").await.expect_err("still not enrolled");
    assert_eq!(status.code(), Code::NotFound);
}

async fn payments_a_bad_command_is_invalid_argument_naming_its_index(stack: &Stack) {
    let mut client = payments_client(stack, Role::Service).await;
    let participant = started_payee(&mut client).await;
    let before = accrual(&mut client, &participant, "2027-01-15").await.expect("accrual before");
    let mut bad = suspension(&participant, "2026-12-01", "2027-06-01");
    bad.until = None;
    let status = client
        .preview_commands(accrual_commands(
            vec![
                AccrualCommand::SuspendAccrual(suspension(&participant, "2026-12-01", "2027-06-01")),
                AccrualCommand::SuspendAccrual(bad),
            ],
            "2027-01-15",
        ))
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(fields(&status), ["commands[1].suspend_accrual.until"]);

    let status = client.preview_commands(accrual_commands(vec![], "2027-01-15")).await.expect_err("empty");
    assert_eq!((status.code(), fields(&status)), (Code::InvalidArgument, vec!["commands".to_string()]));

    // A command refused when run names its place in the list.
    let status = client
        .preview_commands(accrual_commands(
            vec![
                AccrualCommand::SuspendAccrual(suspension(&participant, "2026-12-01", "2027-06-01")),
                AccrualCommand::SuspendAccrual(suspension(&new_id(), "2026-12-01", "2027-06-01")),
            ],
            "2027-01-15",
        ))
        .await
        .expect_err("not enrolled");
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().starts_with("commands[1] (SuspendAccrual)"), "{}", status.message());

    assert_eq!(accrual(&mut client, &participant, "2027-01-15").await.expect("accrual after"), before);
}

async fn payments_an_ecf_lead_may_not_preview(stack: &Stack) {
    let mut service = payments_client(stack, Role::Service).await;
    let participant = started_payee(&mut service).await;
    let dp = new_id();
    let mut lead = stack.payments(Some(&stack.token(Role::EcfLead, None, &[&dp]))).await;
    let suspend = suspension(&participant, "2026-12-01", "2027-06-01");
    let status = lead
        .preview_commands(accrual_commands(vec![AccrualCommand::SuspendAccrual(suspend.clone())], "2027-01-15"))
        .await
        .expect_err("denied");
    assert_eq!(status.code(), Code::PermissionDenied);
    // The same policy as the commands: an admin is refused both.
    let mut admin = payments_client(stack, Role::Admin).await;
    let previewed = admin
        .preview_commands(accrual_commands(vec![AccrualCommand::SuspendAccrual(suspend.clone())], "2027-01-15"))
        .await
        .expect_err("an admin may not preview");
    let sent = admin.suspend_accrual(suspend).await.expect_err("an admin may not send");
    assert_eq!((previewed.code(), sent.code()), (Code::PermissionDenied, Code::PermissionDenied));
}

async fn payments_a_ten_command_preview_takes(stack: &Stack) {
    let mut client = payments_client(stack, Role::Service).await;
    let participants: Vec<String> = (0..5).map(|_| new_id()).collect();
    let commands: Vec<AccrualCommand> = participants
        .iter()
        .flat_map(|p| {
            [
                AccrualCommand::EnrolPayee(enrol_payee(p)),
                AccrualCommand::SuspendAccrual(suspension(p, "2026-12-01", "2027-06-01")),
            ]
        })
        .collect();
    let request = accrual_commands(commands, "2027-01-15");
    // The first call warms the connection.
    client.preview_commands(request.clone()).await.expect("preview");
    let started = Instant::now();
    let runs = 5;
    for _ in 0..runs {
        let preview = client.preview_commands(request.clone()).await.expect("preview").into_inner();
        assert_eq!(preview.outlooks.len(), 5);
    }
    println!("payments: a 10-command preview took {:?} on average", started.elapsed() / runs);
}

on_both_backends!(
    content_previewing_a_deferral_moves_the_next_module_past_it_and_changes_nothing,
    content_previewing_the_enrolment_of_an_unknown_learner,
    content_a_bad_command_is_invalid_argument_naming_its_index,
    content_an_ecf_lead_may_not_preview,
    content_a_ten_command_preview_takes,
    payments_previewing_a_suspension_shows_the_state_and_windows_and_changes_nothing,
    payments_previewing_the_enrolment_of_an_unknown_payee,
    payments_a_bad_command_is_invalid_argument_naming_its_index,
    payments_an_ecf_lead_may_not_preview,
    payments_a_ten_command_preview_takes,
);
