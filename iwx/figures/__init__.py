"""The paper's figures as data: a spec file (``figures/figureN.yaml``) names the runs of
each scale and how they are drawn; ``python -m iwx.figure N`` runs what is missing and
draws. :mod:`.spec` reads a spec, :mod:`.plan` turns it into runs, :mod:`.execute`
runs the missing ones, :mod:`.draw` draws (one function per kind of figure). A figure
of kind ``tasks`` runs nothing: :mod:`.frames` builds each panel's environment from its
gin file, :mod:`.views` renders and marks one frame of it, with the OpenGL backend
:mod:`.gl` chooses."""
