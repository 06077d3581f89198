"""errands: a durable Python task queue. Public names only."""

from errands.app import App
from errands.brokers import from_url
from errands.brokers.contract import (
    Binding,
    Broker,
    Capabilities,
    Claimed,
    Exchange,
    JobQuery,
    Topology,
    WorkerInfo,
)
from errands.current import RunningJob, current_job, progress
from errands.enqueue_hooks import EnqueueHook
from errands.errors import (
    BlockingCallInEventLoop,
    BrokerError,
    BrokerFull,
    BrokerUnavailable,
    ErrandsError,
    ExchangeNotFound,
    JobFailed,
    JobNotFound,
    LeaseLost,
    MalformedMessage,
    ResultTimeout,
    Retry,
    ScheduleExists,
    ScheduleNotFound,
    TaskNotRegistered,
    Timeout,
    UnknownBrokerScheme,
    Unroutable,
)
from errands.handle import JobCancelled, JobHandle, ResultExpired, wait, wait_async
from errands.job import (
    AttemptError,
    CancelReason,
    ErrorKind,
    FailReason,
    Job,
    JobSpec,
    JobState,
    Progress,
)
from errands.lease import Lease
from errands.push import InvalidSignature, PushRejected, PushRetry, verify_signature
from errands.retry import RetryPolicy
from errands.scheduling.schedule import Schedule
from errands.scheduling.scheduler import Scheduler
from errands.scheduling.schedules import ScheduleInfo
from errands.settings import Settings
from errands.task import Call, RoutedTask, Task, TaskOptions
from errands.worker.middleware import JobLog, Middleware
from errands.workflow.canvas import Chain, Chord, Group, Workflow, chain, chord, group
from errands.workflow.failure import StepFailed
from errands.workflow.handle import WorkflowHandle

__version__ = "0.1.0"

__all__ = [
    "App",
    "AttemptError",
    "Binding",
    "BlockingCallInEventLoop",
    "Broker",
    "BrokerError",
    "BrokerFull",
    "BrokerUnavailable",
    "Call",
    "CancelReason",
    "Capabilities",
    "Chain",
    "Chord",
    "Claimed",
    "EnqueueHook",
    "ErrandsError",
    "ErrorKind",
    "Exchange",
    "ExchangeNotFound",
    "FailReason",
    "Group",
    "InvalidSignature",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobHandle",
    "JobLog",
    "JobNotFound",
    "JobQuery",
    "JobSpec",
    "JobState",
    "Lease",
    "LeaseLost",
    "MalformedMessage",
    "Middleware",
    "Progress",
    "PushRejected",
    "PushRetry",
    "ResultExpired",
    "ResultTimeout",
    "Retry",
    "RetryPolicy",
    "RoutedTask",
    "RunningJob",
    "Schedule",
    "ScheduleExists",
    "ScheduleInfo",
    "ScheduleNotFound",
    "Scheduler",
    "Settings",
    "StepFailed",
    "Task",
    "TaskNotRegistered",
    "TaskOptions",
    "Timeout",
    "Topology",
    "UnknownBrokerScheme",
    "Unroutable",
    "WorkerInfo",
    "Workflow",
    "WorkflowHandle",
    "chain",
    "chord",
    "current_job",
    "from_url",
    "group",
    "progress",
    "verify_signature",
    "wait",
    "wait_async",
]
