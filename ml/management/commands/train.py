import json

from django.core.management.base import BaseCommand, CommandError

from ml import services
from ml.models import ModelVersion
from ml.tasks import PART_TASKS
from pricing_saas.web.errors import ServiceError
from tenants.context import tenant_context
from tenants.management.commands import tenant_or_error
from tenants.tasks import tasks_run_here


class Command(BaseCommand):
    help = "Train a tenant's model: queue it on ml_train, or run it here with --sync."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--model", required=True, choices=[k.value for k in ModelVersion.Kind])
        parser.add_argument("--sync", action="store_true", help="train in this process and wait")
        parser.add_argument("--trainer", choices=services.TRAINERS)
        parser.add_argument("--epochs", type=int)
        parser.add_argument("--base-model", help="a name from ML_BASE_MODELS (default: minilm)")

    def handle(self, *args, slug, model, sync, trainer, epochs, base_model, **options):
        tenant = tenant_or_error(slug)
        with tenant_context(tenant):
            try:
                version = services.start_training(
                    kind=model,
                    trainer=trainer,
                    epochs=epochs,
                    base_model=base_model,
                    enqueue=not sync,
                )
            except ServiceError as exc:
                raise CommandError(exc.detail) from exc
            if not sync:
                self.stdout.write(f"queued {version} on ml_train (follow it in the portal: Models)")
                return
            if version.status != ModelVersion.Status.QUEUED:
                raise CommandError(f"{version} is already running")

            last = {"step": -1}

            def echo(state):
                step, total = state.get("step", 0), state.get("total_steps")
                if step - last["step"] >= 50 or step == total:
                    last["step"] = step
                    self.stderr.write(
                        f"epoch {state['epoch']}/{state['epochs']} step {step}/{total} "
                        f"loss {state['loss']} eta {state['eta_s']}s"
                    )

            with tasks_run_here(PART_TASKS):  # a fit in parts runs whole here
                version = services.run_training(version_id=version.pk, on_progress=echo, sync=True)
            version.refresh_from_db()
        self.stdout.write(f"{version}: {version.message}")
        self.stdout.write(json.dumps(version.metrics, indent=2, default=str))
        if version.status not in (ModelVersion.Status.READY, ModelVersion.Status.PROMOTED):
            raise CommandError(f"training ended {version.status}")
