# Toy workflow for tests/test_slurm.py: `flaky` is killed (SIGKILL) on its first attempt and
# succeeds on the next, so a run completes only if the profile's `retries` resubmits it.
# It includes nothing of the real workflow, so it runs in seconds.


rule all:
    input:
        "flaky.txt",
        "steady.txt",


rule steady:
    output:
        "steady.txt",
    shell:
        "echo ok > {output}"


rule flaky:
    output:
        "flaky.txt",
    shell:
        """
        if [ ! -e first_attempt.marker ]; then
            touch first_attempt.marker
            echo "first attempt: killing myself" >&2
            kill -KILL $$
        fi
        echo "second attempt" > {output}
        """
