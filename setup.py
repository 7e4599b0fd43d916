"""Packaging for the creator-governance job suite.

The wheel carries every importable piece a Spark executor or a spark-submit driver needs:
the pure logic (`libs`), the thin job entry points (`jobs`), table schemas (`schemas`),
data contracts (`expectations`) and the per-environment YAML (`conf`, shipped as package
data so a job running from the wheel on a cluster reads the same settings as a local run).
"""
from setuptools import find_packages, setup

setup(
    name="creatorgov",
    version="0.1.0",
    description="Creator-governance PySpark job suite (quality, graph intelligence, strategy, explanations)",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["libs", "libs.*", "jobs", "jobs.*", "schemas", "schemas.*",
                                    "expectations", "expectations.*", "conf"]),
    package_data={"conf": ["*.yaml"], "libs.governance": ["policies/*.yaml"]},
    # Runtime deps are pinned in requirements.txt + constraints.txt (the lock); the wheel only
    # declares the light ones so that shipping it to executors never triggers a resolve.
    install_requires=["PyYAML"],
    entry_points={"console_scripts": ["cgov=libs.platform.cli:main"]},
)
