"""nbval settings for the chapters.

myst-nb's `glue` stores a figure under the papermill record MIME types. nbval skips
plain `image/png` outputs but not these, and a figure's PNG bytes change between runs
(seaborn's strip-plot jitter is random), so the glued images are left out of the
comparison like every other image. Their text outputs are still compared.
"""

GLUED_IMAGES = ("application/papermill.record/image/png",)


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += GLUED_IMAGES
