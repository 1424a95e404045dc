"""A pool of provider accounts between the engine and the providers.

The engine asks the pool which account a new job goes to (`choose`), holds a slot there
while the job is in flight (`acquire`/`release`), and reports every answer
(`record_success`/`record_failure`). The pool sets aside an account whose answers say it
cannot serve (auth, balance, ban, a storm of 5xx/429), probes it again after a cool-down,
and otherwise stays out of the way: a follow-up always goes to its parent's account,
because no other account can act on that job.

The pool is also a `Provider`: it forwards each request to the job's own account, so the
engine's polling and cancelling code did not have to change. It knows nothing of Discord.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bot.accounts.failures import REASONS, AsideKind, Verdict, account_fault, is_storm_error
from bot.config import key_fix
from bot.domain import Job, Operation, OperationKind, ProviderSnapshot, SpeedMode
from bot.providers.base import AccountInfo, AuthError, Capabilities, Provider, ProviderError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PoolSettings:
    # A busy account or a storm: probed again after this long (doubling up to the max).
    cooldown_s: float = 60.0
    max_cooldown_s: float = 1800.0
    # A restricted or suspended account: probed again after this long.
    banned_cooldown_s: float = 1800.0
    # An account out of credit: its balance is read again this often (where it says).
    balance_probe_s: float = 300.0
    # This many 5xx/429 answers within the window make a storm.
    storm_errors: int = 5
    storm_window_s: float = 60.0


@dataclass(slots=True)
class SetAside:
    kind: AsideKind
    since: float
    # When it is probed next; None = only when an admin puts it back.
    until: float | None
    provider_text: str | None = None
    cooldown_s: float = 0.0

    @property
    def reason(self) -> str:
        return REASONS[self.kind]


@dataclass(eq=False)
class Account:
    name: str
    provider: Provider
    limit: int
    weight: int = 1
    modes: frozenset[SpeedMode] | None = None
    order: int = 0
    in_flight: int = 0
    aside: SetAside | None = None
    balance: AccountInfo | None = None
    _failures: deque[float] = field(default_factory=deque)

    @property
    def kind(self) -> str:
        return self.provider.name

    @property
    def capabilities(self) -> Capabilities:
        return self.provider.capabilities

    @property
    def available(self) -> bool:
        return self.aside is None

    @property
    def has_room(self) -> bool:
        return self.in_flight < self.limit

    @property
    def load(self) -> float:
        return self.in_flight / self.limit

    def serves(self, operation: Operation) -> bool:
        if not self.capabilities.supports(operation.kind):
            return False
        mode = operation.mode
        return mode is None or self.modes is None or mode in self.modes


class AccountPool:
    """Accounts in the order configured; the first is the default for old jobs."""

    def __init__(
        self, accounts: Iterable[Account], *, settings: PoolSettings | None = None
    ) -> None:
        self.accounts = list(accounts)
        if not self.accounts:
            raise ValueError("a pool needs at least one account")
        names = [a.name for a in self.accounts]
        if len(set(names)) != len(names):
            raise ValueError("account names must be unique")
        for i, account in enumerate(self.accounts):
            account.order = i
        self.settings = settings or PoolSettings()
        self._by_name = {a.name: a for a in self.accounts}
        self._holders: dict[str, Account] = {}  # job id -> the account it holds a slot at
        self.capabilities = union_capabilities(a.capabilities for a in self.accounts)
        kinds = {a.kind for a in self.accounts}
        self.name = self.accounts[0].kind if len(kinds) == 1 else "pool"

    @classmethod
    def single(cls, provider: Provider, *, limit: int, name: str = "default") -> AccountPool:
        """Today's one-account set-up, as a pool of one."""
        return cls([Account(name=name, provider=provider, limit=max(1, limit))])

    @property
    def _shared(self) -> bool:
        # A pool of one sets nothing aside: there is nowhere else to send its jobs.
        return len(self.accounts) > 1

    # --- lookup --------------------------------------------------------------------------

    def get(self, name: str | None) -> Account | None:
        return self._by_name.get(name) if name else None

    def account_for(self, job: Job) -> Account:
        """The account a job lives at. Jobs stored before accounts existed belong to the
        first account of their provider (the single account they were sent with)."""
        account = self.get(job.account)
        if account is not None:
            return account
        for candidate in self.accounts:
            if candidate.kind == job.provider:
                return candidate
        return self.accounts[0]

    def capabilities_for(self, job: Job) -> Capabilities:
        return self.account_for(job).capabilities

    def serving(self, operation: Operation) -> list[Account]:
        return [a for a in self.accounts if a.serves(operation)]

    def can_serve(self, operation: Operation) -> bool:
        return any(a.serves(operation) for a in self.accounts)

    def supports(self, kind: OperationKind) -> bool:
        return self.capabilities.supports(kind)

    # --- routing -------------------------------------------------------------------------

    def choose(self, operation: Operation) -> Account | None:
        """The account a new job goes to: it serves the operation and speed, is not set
        aside and has room; least loaded relative to its limit, then the heavier weight,
        then the order of the file."""
        best: Account | None = None
        for account in self.accounts:
            if not (account.available and account.has_room and account.serves(operation)):
                continue
            if best is None or _rank(account) < _rank(best):
                best = account
        return best

    def choose_by(self, operation: Operation, used: Mapping[str, int]) -> Account | None:
        """`choose` with the slots in use counted elsewhere (by the database, for every
        process sharing it: bot/engine/shared_queue.py) instead of this process's."""
        best: tuple[float, int, int] | None = None
        chosen: Account | None = None
        for account in self.accounts:
            in_use = used.get(account.name, 0)
            if not (account.available and in_use < account.limit and account.serves(operation)):
                continue
            rank = (in_use / account.limit, -account.weight, account.order)
            if best is None or rank < best:
                best, chosen = rank, account
        return chosen

    def has_room(self) -> bool:
        return any(a.available and a.has_room for a in self.accounts)

    def acquire(self, job_id: str, account: Account) -> None:
        previous = self._holders.get(job_id)
        if previous is account:
            return
        if previous is not None:
            previous.in_flight -= 1
        self._holders[job_id] = account
        account.in_flight += 1

    def release(self, job_id: str) -> None:
        account = self._holders.pop(job_id, None)
        if account is not None:
            account.in_flight -= 1

    def holder(self, job_id: str) -> Account | None:
        return self._holders.get(job_id)

    def set_limit(self, limit: int, *, account: str | None = None) -> None:
        targets = [self._by_name[account]] if account else self.accounts
        for target in targets:
            target.limit = max(1, limit)

    def refusal(self, operation: Operation) -> str | None:
        """Why no account will take `operation`, when every account that could is set
        aside until an admin acts; None while one may still take it (now or after its
        cool-down)."""
        serving = self.serving(operation)
        if not serving:
            return "None of the bot's image service accounts can do that."
        if any(a.available or not a.aside or not a.aside.kind.waits_for_admin for a in serving):
            return None
        return "Every image service account that could do this is set aside: " + "; ".join(
            describe_aside(a) for a in serving
        )

    def pinned_refusal(self, account: Account) -> str | None:
        """Why a follow-up of a job at `account` cannot be sent now, or None."""
        if account.aside is None:
            return None
        return (
            f"The account that made this image ({account.name}) is set aside: "
            f"{account.aside.reason}. Follow-ups must go to the same account; "
            "try again when an admin has put it back, or start a new /imagine."
        )

    # --- failures ------------------------------------------------------------------------

    def record_success(self, account: Account) -> None:
        account._failures.clear()

    def record_failure(self, account: Account, exc: ProviderError, now: float) -> Verdict | None:
        """Note a failed request; returns the verdict when it set the account aside.
        A pool of one never sets its account aside: there is nowhere else to go, and the
        job's own error (and today's retries) say it all."""
        if not self._shared:
            return None
        verdict = account_fault(account.kind, exc)
        if verdict is None and is_storm_error(exc):
            window = account._failures
            window.append(now)
            while window and now - window[0] > self.settings.storm_window_s:
                window.popleft()
            if len(window) >= self.settings.storm_errors:
                verdict = Verdict(AsideKind.STORM, exc.provider_text)
        if verdict is None:
            return None
        if account.aside is None:
            self.set_aside(account, verdict, now)
        return verdict

    def set_aside(self, account: Account, verdict: Verdict, now: float) -> None:
        s = self.settings
        if verdict.kind is AsideKind.AUTH:
            until, cooldown = None, 0.0
        elif verdict.kind is AsideKind.BALANCE:
            until, cooldown = now + s.balance_probe_s, s.balance_probe_s
        elif verdict.kind is AsideKind.BANNED:
            until, cooldown = now + s.banned_cooldown_s, s.banned_cooldown_s
        else:
            until, cooldown = now + s.cooldown_s, s.cooldown_s
        account.aside = SetAside(verdict.kind, now, until, verdict.provider_text, cooldown)
        account._failures.clear()
        # The provider's words may say more, but they stay out of the log line's reason.
        log.warning(
            "account %s (%s) set aside: %s", account.name, account.kind, account.aside.reason
        )

    def restore(self, name: str) -> Account:
        """Put an account back (an admin's word, or a probe that succeeded)."""
        account = self._by_name[name]
        if account.aside is not None:
            log.info("account %s (%s) is back in the pool", account.name, account.kind)
        account.aside = None
        account._failures.clear()
        return account

    async def read_accounts(self, *, timeout_s: float = 5.0, now: float | None = None) -> None:
        """Read each account's own information: its balance where the provider tells, and
        its concurrency, which lowers the configured limit when smaller. Best effort: an
        account that does not answer keeps its settings. With `now`, an answer that says
        the account cannot serve (a refused key, no credit) sets it aside."""

        async def read(account: Account) -> None:
            try:
                info = await asyncio.wait_for(account.provider.account(), timeout=timeout_s)
            except Exception as exc:
                if now is not None and isinstance(exc, ProviderError):
                    verdict = account_fault(account.kind, exc)
                    if verdict is not None and account.aside is None and self._shared:
                        self.set_aside(account, verdict, now)
                if isinstance(exc, AuthError):
                    # Every job would fail on it: loud, with the fix (issue 15 item 3). The
                    # one account of MJ_PROVIDER is named after its kind; a file's are not.
                    from_file = account.name != account.kind
                    fix = key_fix(account.kind, account.name, accounts_file=from_file)
                    log.error(
                        "account %s (%s): the image service refused its API key. %s",
                        account.name,
                        account.kind,
                        fix,
                    )
                    return
                log.info(
                    "account %s: information not read (%s); %d job(s) at once",
                    account.name,
                    type(exc).__name__,
                    account.limit,
                )
                return
            account.balance = info
            if now is not None:
                self._judge_balance(account, info, now)
            allowed = info.max_concurrent_jobs
            if allowed is not None and 0 < allowed < account.limit:
                account.limit = allowed
                log.info("account %s runs %d job(s) at once", account.name, allowed)

        await asyncio.gather(*(read(a) for a in self.accounts))

    def _judge_balance(self, account: Account, info: AccountInfo, now: float) -> None:
        """A balance read outside a probe: topped up brings an account back; an empty one
        sets it aside (Legnext only: its jobs draw on that balance, while a PiAPI-schema
        host-your-account plan may run with no credits)."""
        credits, aside = info.credits, account.aside
        if credits is None:
            return
        if aside is not None and aside.kind is AsideKind.BALANCE and credits > 0:
            self.restore(account.name)  # topped up: the balance reads positive again
        elif aside is None and credits <= 0 and account.kind == "legnext" and self._shared:
            self.set_aside(account, Verdict(AsideKind.BALANCE, "balance reads 0"), now)

    # --- probing -------------------------------------------------------------------------

    def next_probe_at(self) -> float | None:
        times = [a.aside.until for a in self.accounts if a.aside and a.aside.until is not None]
        return min(times) if times else None

    async def probe_due(self, now: float, *, timeout_s: float = 10.0) -> list[str]:
        """Probe every set-aside account whose cool-down is over; the names put back."""
        due = [
            a
            for a in self.accounts
            if a.aside is not None and a.aside.until is not None and a.aside.until <= now
        ]
        back: list[str] = []
        for account in due:
            if await self._probe(account, now, timeout_s):
                back.append(account.name)
        return back

    async def _probe(self, account: Account, now: float, timeout_s: float) -> bool:
        aside = account.aside
        assert aside is not None
        try:
            info = await asyncio.wait_for(account.provider.account(), timeout=timeout_s)
        except (ProviderError, TimeoutError) as exc:
            verdict = account_fault(account.kind, exc) if isinstance(exc, ProviderError) else None
            if verdict is not None and verdict.kind is AsideKind.AUTH:
                aside.kind, aside.until = AsideKind.AUTH, None
                return False
            self._extend(aside, now)
            return False
        account.balance = info
        if aside.kind is AsideKind.BALANCE and (info.credits is None or info.credits <= 0):
            aside.until = now + self.settings.balance_probe_s  # still empty, or unknown
            return False
        self.restore(account.name)
        return True

    def _extend(self, aside: SetAside, now: float) -> None:
        if aside.kind is AsideKind.BALANCE:
            aside.until = now + self.settings.balance_probe_s
            return
        aside.cooldown_s = min(self.settings.max_cooldown_s, max(aside.cooldown_s, 1.0) * 2)
        aside.until = now + aside.cooldown_s

    # --- the Provider protocol, forwarded to the job's account --------------------------------

    async def submit(
        self, operation: Operation, *, job: Job, parent: Job | None
    ) -> ProviderSnapshot:
        return await self.account_for(job).provider.submit(operation, job=job, parent=parent)

    async def fetch(self, job: Job) -> ProviderSnapshot:
        return await self.account_for(job).provider.fetch(job)

    async def cancel(self, job: Job) -> None:
        await self.account_for(job).provider.cancel(job)

    async def account(self) -> AccountInfo:
        """The first account's information (what a one-account bot showed before)."""
        return await self.accounts[0].provider.account()

    async def aclose(self) -> None:
        for account in self.accounts:
            try:
                await account.provider.aclose()
            except Exception:  # closing the others matters more
                log.warning("account %s did not close cleanly", account.name, exc_info=True)


def _rank(account: Account) -> tuple[float, int, int]:
    return (account.load, -account.weight, account.order)


def describe_aside(account: Account) -> str:
    aside = account.aside
    return f"{account.name}: {aside.reason}" if aside else f"{account.name}: available"


def union_capabilities(caps: Iterable[Capabilities]) -> Capabilities:
    """What the pool offers: anything one account can do. The follow-up window is the
    most lenient (each job's own account is checked when it is sent); the prompt length
    the shortest, since a prompt is checked before its account is known."""
    items = list(caps)
    windows = [c.follow_up_window for c in items]
    return Capabilities(
        operations=frozenset().union(*(c.operations for c in items)),
        can_cancel=any(c.can_cancel for c in items),
        reports_progress=any(c.reports_progress for c in items),
        max_prompt_length=min(c.max_prompt_length for c in items),
        follow_up_window=None if None in windows else max(w for w in windows if w is not None),
    )
