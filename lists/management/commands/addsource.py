from __future__ import annotations

import json
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from hub.errors import ServiceError
from hub.lib.jsonsafe import JSONLimitError
from hub.management.base import cli_actor
from lists.models import HashList, Source
from lists.sources.credentials import ENV_NAME, credential_problems, env_prefix
from lists.sources.forms import MAX_INTERVAL_MINUTES, config_loads
from lists.sources.schedules import schedule_text
from lists.sources.services import source_create, source_lists

# --<option> VAR  ->  config key holding the variable's *name* (never its value).
CREDENTIAL_OPTIONS = ("username_env", "password_env", "token_env")
# Where each kind's adapter looks for the variable naming its token (lists/sources/adapters/*.py).
TOKEN_KEYS = {
    Source.Kind.FEED: "token_env",
    Source.Kind.HASHHUB: "api_key_env",
    Source.Kind.STOPNCII: "subscription_key_env",
}


class Command(BaseCommand):
    help = (
        "Register an upstream verified source and make its CSAM and SE lists. Credentials are "
        "given as the names of environment variables starting with HASHHUB_SOURCE_ "
        "(--username-env/--password-env or --token-env), read by the importer when it runs, "
        "or stored encrypted on the source's staff page."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--kind", required=True, choices=Source.Kind.values)
        parser.add_argument("--url", default="", help="the upstream's address (config 'url')")
        parser.add_argument(
            "--category",
            default=HashList.Category.CSAM,
            choices=HashList.Category.values,
            help="the category of records that do not say (default: csam)",
        )
        parser.add_argument(
            "--access",
            default=Source.Access.GRANTED,
            choices=Source.Access.values,
            help="all: every approved organisation; granted (default): only those staff grant",
        )
        parser.add_argument(
            "--interval",
            type=int,
            default=0,
            metavar="MIN",
            help="fetch every MIN minutes (default 0: only by hand or fetchsource)",
        )
        parser.add_argument(
            "--cron",
            default="",
            metavar="'M H DOM MON DOW'",
            help="or fetch on this crontab schedule, in UTC (e.g. '0 2 * * *': daily at 02:00)",
        )
        parser.add_argument("--description", default="")
        parser.add_argument(
            "--config-json",
            default="",
            metavar="JSON",
            help="further adapter settings as a JSON object (no credentials: *_env names only)",
        )
        parser.add_argument(
            "--username-env", default="", metavar="VAR", help="variable holding the user name"
        )
        parser.add_argument(
            "--password-env", default="", metavar="VAR", help="variable holding the password"
        )
        parser.add_argument(
            "--token-env",
            default="",
            metavar="VAR",
            help="variable holding the token or API key (feed: token_env, hashhub: api_key_env, "
            "stopncii: subscription_key_env)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        config = self._config(options)
        try:
            source = source_create(
                name=options["name"],
                kind=options["kind"],
                config=config,
                default_category=options["category"],
                access=options["access"],
                interval_minutes=options["interval"],
                cron=options["cron"],
                description=options["description"],
                actor=cli_actor(),
            )
        except ServiceError as error:
            raise CommandError(f"{error.code}: {error.message}") from error
        self._report(source)

    def _config(self, options: dict[str, Any]) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if options["config_json"]:
            try:
                config = config_loads(options["config_json"])
            except json.JSONDecodeError as error:
                raise CommandError(
                    f"bad_config: --config-json is not valid JSON ({error.msg})."
                ) from None
            except JSONLimitError as error:
                raise CommandError(
                    f"bad_config: --config-json is refused: {error.message}"
                ) from None
            if not isinstance(config, dict):
                raise CommandError("bad_config: --config-json must be a JSON object.")
        if options["url"]:
            config["url"] = options["url"]
        if bool(options["username_env"]) != bool(options["password_env"]):
            raise CommandError("bad_config: give --username-env and --password-env together.")
        if options["token_env"] and options["username_env"]:
            raise CommandError(
                "bad_config: give either --username-env/--password-env or --token-env, not both."
            )
        for option in CREDENTIAL_OPTIONS:
            if options[option]:
                if not ENV_NAME.match(options[option]):
                    raise CommandError(
                        f"bad_config: --{option.replace('_', '-')} takes the name of an "
                        "environment variable (letters, digits, underscores), not its value."
                    )
                if not options[option].startswith(env_prefix()):
                    raise CommandError(
                        f"env_not_allowed: --{option.replace('_', '-')} must name an environment "
                        f"variable starting with {env_prefix()} (HASHHUB_SOURCE_ENV_PREFIX): a "
                        "source may read no other variable."
                    )
                key = TOKEN_KEYS.get(options["kind"], option) if option == "token_env" else option
                config[key] = options[option]
        if not 0 <= options["interval"] <= MAX_INTERVAL_MINUTES:
            raise CommandError(
                f"invalid_interval: --interval must be 0 to {MAX_INTERVAL_MINUTES} minutes."
            )
        problems = credential_problems(config)
        if problems:
            raise CommandError("credential_in_config: " + " ".join(problems))
        return config

    def _report(self, source: Source) -> None:
        lists = source_lists(source)
        made = ", ".join(f"{hl.name} ({hl.public_id})" for hl in lists.values())
        schedule = schedule_text(source) or "only by hand (fetchsource or the staff page)"
        access = (
            "every approved organisation"
            if source.access == Source.Access.ALL
            else "only organisations staff grant it to (none yet)"
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Registered source {source.name} ({source.get_kind_display()}, "
                f"id {source.public_id})."
            )
        )
        self.stdout.write(f"Lists: {made}; records without a category go to "
                          f"{source.get_default_category_display()}.")  # fmt: skip
        self.stdout.write(f"Access: {access}. Fetched {schedule}.")
        for key, variable in sorted(source.config.items()):
            if key.endswith("_env") and isinstance(variable, str):
                state = "set" if os.environ.get(variable) else "NOT set"
                self.stdout.write(
                    f"{key}: reads ${variable} when it runs ({state} in this shell; the worker "
                    "that runs imports needs it)."
                )
