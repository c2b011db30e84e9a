#!/usr/bin/env python3
"""A Steplab client in Python, with stubs generated only from proto/.

Registers an ECT and their mentor, asks what deferring the ECT would do
(validate_only), defers them, and reads what content release now holds back
for them. Run it against `steplab up` (docs/api.md, "Clients in other
languages"):

    python3 examples/python/defer_and_read.py

Settings, from the environment:
  STEPLAB_PARTICIPANT, STEPLAB_CONTENT  the services (127.0.0.1:50051, :50052)
  STEPLAB_CLI                           how to run the steplab command, which
                                        mints the tokens ("steplab")
  STEPLAB_TODAY                         the stack's today, when pinned
"""
import datetime
import os
import shlex
import subprocess
import sys
import time
import uuid

import grpc
from google.rpc import error_details_pb2
from google.type import date_pb2
from grpc_status import rpc_status

from steplab.common.v1 import common_pb2
from steplab.content.v1 import content_pb2, content_pb2_grpc
from steplab.participant.v1 import participant_pb2 as pb
from steplab.participant.v1 import participant_pb2_grpc

PARTICIPANT = os.environ.get("STEPLAB_PARTICIPANT", "127.0.0.1:50051")
CONTENT = os.environ.get("STEPLAB_CONTENT", "127.0.0.1:50052")
CLI = shlex.split(os.environ.get("STEPLAB_CLI", "steplab"))


def token(*args: str) -> str:
    """A bearer token from `steplab token` (dev tokens of the stack's data dir)."""
    return subprocess.run([*CLI, "token", *args], check=True, capture_output=True, text=True).stdout.strip()


def day(d: datetime.date) -> date_pb2.Date:
    return date_pb2.Date(year=d.year, month=d.month, day=d.day)


def key() -> str:
    """A fresh idempotency key: a retry with the same key returns the first answer."""
    return str(uuid.uuid4())


class Caller:
    """Calls with one token, and shows a refusal's ErrorInfo the way a client reads it."""

    def __init__(self, bearer: str):
        self.metadata = (("authorization", f"Bearer {bearer}"),)

    def __call__(self, method, request, attempts: int = 5):
        """Calls `method`. A busy service (RESOURCE_EXHAUSTED or UNAVAILABLE,
        e.g. DELIVERY_BACKLOG) says in a RetryInfo when to try again: the
        same request, so the same idempotency key, is sent again then."""
        for attempt in range(1, attempts + 1):
            try:
                return method(request, metadata=self.metadata, timeout=10)
            except grpc.RpcError as err:
                delay = retry_delay(err)
                if delay is None or attempt == attempts:
                    raise
                time.sleep(delay)


def retry_delay(err: grpc.RpcError):
    """The seconds a busy service asks a caller to wait, or None."""
    if err.code() not in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE):
        return None
    status = rpc_status.from_call(err)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToTimedelta().total_seconds()
    return None


def refusal(err: grpc.RpcError) -> str:
    status = rpc_status.from_call(err)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return f"{err.code().name} {info.reason} {dict(info.metadata)}"
    return f"{err.code().name} {err.details()}"


def main() -> int:
    today = datetime.date.fromisoformat(os.environ.get("STEPLAB_TODAY") or datetime.date.today().isoformat())
    participants = participant_pb2_grpc.ParticipantServiceStub(grpc.insecure_channel(PARTICIPANT))
    content = content_pb2_grpc.ContentReleaseServiceStub(grpc.insecure_channel(CONTENT))

    admin = Caller(token("--role", "admin"))
    dp = admin(participants.CreateDeliveryPartner,
               pb.CreateDeliveryPartnerRequest(name="Python Region", idempotency_key=key())).delivery_partner
    school = admin(participants.CreateSchool,
                   pb.CreateSchoolRequest(urn="400001", name="Python School",
                                          delivery_partner_id=dp.delivery_partner_id,
                                          area_covered=True, idempotency_key=key())).school
    lead = Caller(token("--role", "ecf_lead", "--delivery-partner", dp.delivery_partner_id))

    registered_on = datetime.date(today.year if today.month >= 9 else today.year - 1, 9, 1)
    ect = lead(participants.RegisterParticipant, pb.RegisterParticipantRequest(
        school_id=school.school_id, kind=common_pb2.PARTICIPANT_KIND_ECT, full_name="Ada Lovelace",
        trn="1234567", registered_on=day(registered_on), idempotency_key=key())).participant
    mentor = lead(participants.RegisterParticipant, pb.RegisterParticipantRequest(
        school_id=school.school_id, kind=common_pb2.PARTICIPANT_KIND_MENTOR, full_name="Grace Hopper",
        trn="7654321", registered_on=day(registered_on), previous_pilot_mentor=False,
        idempotency_key=key())).participant
    lead(participants.AssignMentor, pb.AssignMentorRequest(
        ect_id=ect.participant_id, mentor_id=mentor.participant_id, effective_date=day(registered_on),
        idempotency_key=key()))
    print(f"registered ECT {ect.participant_id} with mentor {mentor.participant_id}")

    # A refusal carries ErrorInfo: the reason to branch on and the numbers behind it.
    try:
        lead(participants.PauseParticipant, pb.PauseParticipantRequest(
            participant_id=ect.participant_id, start_date=day(today),
            expected_end_date=day(today + datetime.timedelta(days=56)), idempotency_key=key()))
        print("a 56-day pause was accepted")
        return 1
    except grpc.RpcError as err:
        print(f"a 56-day pause is refused: {refusal(err)}")

    defer = pb.DeferParticipantRequest(
        participant_id=ect.participant_id, reason=common_pb2.DEFERRAL_REASON_PARENTAL_LEAVE,
        deferral_date=day(today + datetime.timedelta(days=7)),
        expected_return_date=day(today + datetime.timedelta(days=280)))

    # First the dry run (AIP-163): what would change, and nothing changes.
    defer.validate_only = True
    preview = lead(participants.DeferParticipant, defer).effects
    print(f"dry run: {len(preview.status_changes)} status changes, {len(preview.commands)} commands")
    for change in preview.status_changes:
        print(f"  would change {change.participant_id} to {common_pb2.TrainingStatus.Name(change.new_status)}"
              f" on {change.effective_date.year}-{change.effective_date.month:02}-{change.effective_date.day:02}")
    for outlook in preview.release_outlooks:
        print(f"  next module of {outlook.participant_id}: {outlook.next_module_after.module_id or 'none'}")
    still = lead(participants.GetParticipant, pb.GetParticipantRequest(
        participant_id=ect.participant_id, as_of=defer.deferral_date)).participant
    print(f"after the dry run the ECT is {common_pb2.TrainingStatus.Name(still.status)} on the deferral date")

    defer.validate_only = False
    defer.idempotency_key = key()
    done = lead(participants.DeferParticipant, defer)
    print(f"deferred; cascaded to {list(done.cascaded_participant_ids)}")

    # Content release applies the hold when the participant service's relay
    # delivers it; read as of the deferral date, when the hold is in force.
    deadline = time.monotonic() + 30
    while True:
        state = lead(content.GetReleaseState, content_pb2.GetReleaseStateRequest(
            participant_id=ect.participant_id, as_of=defer.deferral_date))
        holds = [h for h in state.active_holds if h.kind == content_pb2.HOLD_KIND_DEFERRAL]
        if holds or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if not holds:
        print("content release shows no deferral hold after 30 s")
        return 1
    hold = holds[0]
    print(f"content release holds modules from {hold.start_date.year}-{hold.start_date.month:02}-"
          f"{hold.start_date.day:02}; next module {state.next_module.module_id or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
