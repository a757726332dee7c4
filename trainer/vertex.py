r"""Build (and submit) a Vertex AI CustomJob that runs `python -m trainer.task`.

    python -m trainer.vertex --project=P --region=us-central1 --base_output_dir=gs://B/run \
        --image_uri=us-docker.pkg.dev/P/tfcvr/trainer:latest --replicas=4 --machine_type=n1-standard-8 \
        [--num_ps=2 --ps_machine_type=n1-highmem-8] [--dry_run] -- --model=chorus --train_files=gs://...

Everything after `--` is passed to `trainer.task` unchanged. Worker pools
follow Vertex AI's layout: pool 0 is the chief (1 replica), pool 1 the other
`--replicas - 1` workers, pool 2 the `--num_ps` parameter servers. Vertex AI
sets TF_CONFIG for every replica, so `trainer.task` picks
MultiWorkerMirroredStrategy (workers only) or ParameterServerStrategy (with
parameter servers) by itself, and AIP_MODEL_DIR / AIP_CHECKPOINT_DIR /
AIP_TENSORBOARD_LOG_DIR from `--base_output_dir`.

The code runs from the trainer container (the repository's Dockerfile,
built and pushed as in docs/distributed.md): `--image_uri`, by default
`<region>-docker.pkg.dev/<project>/tfcvr/trainer:<tfcvr version>`, the
image those commands push. The Python-package path (`--package_uri=gs://.../
tfcvr-0.1.0.tar.gz` on a prebuilt `--executor_image_uri`) installs tfcvr's
requirements over the image's own; a prebuilt TensorFlow image whose version
tfcvr's TensorFlow requirement excludes is refused, naming both (Vertex AI's
prebuilt training images stop at TensorFlow 2.17 on Python 3.10 in its
"Prebuilt containers for custom training" list, while tfcvr needs 2.21).
`--dry_run` prints the job as JSON (the REST body of
projects.locations.customJobs.create) and submits nothing.
"""

import importlib.metadata
import re
import time

from absl import app, flags

import tfcvr
from tfcvr import cli, optional

FEATURE = "trainer.vertex (Vertex AI jobs)"

FLAGS = flags.FLAGS
TRAINER_MODULE = "trainer.task"


def _define_flags():
    flags.DEFINE_string("project", None, "Google Cloud project.", required=True)
    flags.DEFINE_string("region", "us-central1", "Vertex AI region.")
    flags.DEFINE_string("display_name", None, "Job name; default tfcvr-<model>-<unix time>.")
    flags.DEFINE_string(
        "base_output_dir", None, "gs:// folder; Vertex AI derives AIP_MODEL_DIR etc. from it.", required=True
    )
    flags.DEFINE_integer("replicas", 1, "Training replicas in all: the chief plus replicas-1 workers.")
    flags.DEFINE_integer("num_ps", 0, "Parameter servers (ParameterServerStrategy); 0 = none.")
    flags.DEFINE_string("machine_type", "n1-standard-8", "Machine type of the chief and workers.")
    flags.DEFINE_string("ps_machine_type", None, "Machine type of the parameter servers; default --machine_type.")
    flags.DEFINE_string(
        "image_uri",
        None,
        "Trainer container (the repository's Dockerfile); default <region>-docker.pkg.dev/<project>/tfcvr/"
        "trainer:<tfcvr version>, where docs/distributed.md's build and push commands put it.",
    )
    flags.DEFINE_string("package_uri", None, "gs:// URI of the tfcvr source distribution (instead of --image_uri).")
    flags.DEFINE_string(
        "executor_image_uri",
        None,
        "With --package_uri: the image that installs it. A prebuilt Vertex AI TensorFlow image must have a "
        "TensorFlow version tfcvr accepts.",
    )
    flags.DEFINE_string("service_account", None, "Service account the job runs as.")
    flags.DEFINE_string("tensorboard", None, "Vertex AI TensorBoard resource name to stream logs to.")
    flags.DEFINE_string("staging_bucket", None, "gs:// bucket for the SDK's staging; default the output bucket.")
    flags.DEFINE_bool("dry_run", False, "Print the job spec as JSON instead of submitting it.")


def default_image_uri(project: str, region: str) -> str:
    """Where the `docker build` / `docker push` of docs/distributed.md put the trainer image of this tfcvr version."""
    return f"{region}-docker.pkg.dev/{project}/tfcvr/trainer:{tfcvr.__version__}"


# Vertex AI's prebuilt TensorFlow training images: .../vertex-ai/training/tf-cpu.2-17.py310:latest.
_PREBUILT_TENSORFLOW = re.compile(r"/vertex-ai/training/tf-(?:cpu|gpu|tpu)\.(\d+)-(\d+)\.")


def check_executor_image(executor_image_uri: str) -> None:
    """Refuses a prebuilt TensorFlow training image whose TensorFlow tfcvr's requirement excludes."""
    match = _PREBUILT_TENSORFLOW.search(executor_image_uri)
    requirement = _tensorflow_requirement()
    if not match or requirement is None:
        return  # not a prebuilt TensorFlow image (a custom one is the user's to vouch for)
    SpecifierSet = optional.require("packaging.specifiers", FEATURE).SpecifierSet

    version = f"{match[1]}.{match[2]}"
    if f"{version}.0" not in SpecifierSet(requirement):
        raise ValueError(
            f"--executor_image_uri={executor_image_uri} has TensorFlow {version}, but tfcvr requires tensorflow"
            f"{requirement}: the package would reinstall TensorFlow over the image's at every start, or fail. "
            "No prebuilt Vertex AI training image has a TensorFlow tfcvr accepts; build the trainer image from the "
            "repository's Dockerfile and pass --image_uri (docs/distributed.md)."
        )


def _tensorflow_requirement() -> str | None:
    """The version specifier of tfcvr's tensorflow requirement (installed metadata), e.g. '<2.22,>=2.21'."""
    try:
        requirements = importlib.metadata.requires("tfcvr") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    Requirement = optional.require("packaging.requirements", FEATURE).Requirement

    for line in requirements:
        requirement = Requirement(line)
        if requirement.name == "tensorflow" and not requirement.marker:
            return str(requirement.specifier)
    return None


def worker_pool_specs(
    trainer_args: list[str],
    replicas: int = 1,
    num_ps: int = 0,
    machine_type: str = "n1-standard-8",
    ps_machine_type: str | None = None,
    image_uri: str | None = None,
    package_uri: str | None = None,
    executor_image_uri: str | None = None,
) -> list:
    """Vertex AI WorkerPoolSpecs: chief, workers, parameter servers; each runs trainer.task with `trainer_args`."""
    if replicas < 1:
        raise ValueError(f"--replicas must be at least 1. Received: {replicas}")
    if num_ps < 0:
        raise ValueError(f"--num_ps must be non-negative. Received: {num_ps}")
    if num_ps and replicas < 2:
        raise ValueError("ParameterServerStrategy needs at least one worker besides the chief: --replicas >= 2.")
    if bool(image_uri) == bool(package_uri):
        raise ValueError("Give exactly one of --image_uri (a container with tfcvr) or --package_uri (a tfcvr sdist).")
    if executor_image_uri and not package_uri:
        raise ValueError("--executor_image_uri runs a --package_uri; with a container give only --image_uri.")
    if package_uri:
        if not executor_image_uri:
            raise ValueError("--package_uri needs --executor_image_uri, the image that installs and runs it.")
        check_executor_image(executor_image_uri)

    types = _aiplatform_types()

    def pool(count, machine):
        spec = types.WorkerPoolSpec(machine_spec=types.MachineSpec(machine_type=machine), replica_count=count)
        if image_uri:
            spec.container_spec = types.ContainerSpec(
                image_uri=image_uri, command=["python", "-m", TRAINER_MODULE], args=list(trainer_args)
            )
        else:
            spec.python_package_spec = types.PythonPackageSpec(
                executor_image_uri=executor_image_uri,
                package_uris=[package_uri],
                python_module=TRAINER_MODULE,
                args=list(trainer_args),
            )
        return spec

    pools = [pool(1, machine_type)]
    if replicas > 1 or num_ps:
        pools.append(pool(replicas - 1, machine_type))
    if num_ps:
        pools.append(pool(num_ps, ps_machine_type or machine_type))
    return pools


def custom_job(
    display_name: str,
    pools: list,
    base_output_dir: str,
    service_account: str | None = None,
    tensorboard: str | None = None,
):
    """The CustomJob resource (google.cloud.aiplatform_v1.types.CustomJob)."""
    if not base_output_dir.startswith("gs://"):
        raise ValueError(f"--base_output_dir must be a gs:// folder. Received: {base_output_dir!r}")
    types = _aiplatform_types()
    spec = types.CustomJobSpec(
        worker_pool_specs=pools, base_output_directory=types.GcsDestination(output_uri_prefix=base_output_dir)
    )
    if service_account:
        spec.service_account = service_account
    if tensorboard:
        spec.tensorboard = tensorboard
    return types.CustomJob(display_name=display_name, job_spec=spec)


def _aiplatform_types():
    """google.cloud.aiplatform_v1.types (the `vertex` extra)."""
    return optional.require("google.cloud.aiplatform_v1.types", FEATURE)


def _model_name(trainer_args):
    for arg in trainer_args:
        if arg.startswith("--model="):
            return arg.split("=", 1)[1]
    return "esmm"


def main(argv: list[str]) -> int:
    trainer_args = argv[1:]
    display_name = FLAGS.display_name or f"tfcvr-{_model_name(trainer_args)}-{int(time.time())}"
    image_uri = FLAGS.image_uri
    if image_uri is None and FLAGS.package_uri is None:
        image_uri = default_image_uri(FLAGS.project, FLAGS.region)
    try:
        pools = worker_pool_specs(
            trainer_args,
            FLAGS.replicas,
            FLAGS.num_ps,
            FLAGS.machine_type,
            FLAGS.ps_machine_type,
            image_uri,
            FLAGS.package_uri,
            FLAGS.executor_image_uri,
        )
        job = custom_job(display_name, pools, FLAGS.base_output_dir, FLAGS.service_account, FLAGS.tensorboard)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    if FLAGS.dry_run:
        print(_aiplatform_types().CustomJob.to_json(job))
        return 0
    aiplatform = optional.require("google.cloud.aiplatform", FEATURE)  # needs credentials: only to submit

    bucket = FLAGS.staging_bucket or "gs://" + FLAGS.base_output_dir[len("gs://") :].split("/")[0]
    aiplatform.init(project=FLAGS.project, location=FLAGS.region, staging_bucket=bucket)
    submitted = aiplatform.CustomJob(
        display_name=display_name,
        worker_pool_specs=[_aiplatform_types().WorkerPoolSpec.to_dict(p) for p in pools],
        base_output_dir=FLAGS.base_output_dir,
    )
    submitted.submit(service_account=FLAGS.service_account, tensorboard=FLAGS.tensorboard)
    print(f"Submitted {submitted.resource_name}")
    return 0


if __name__ == "__main__":
    _define_flags()
    cli.run(main, positional=True)  # what follows `--` goes to trainer.task
