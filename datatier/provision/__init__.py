"""Provisioning: create and check what the data tier depends on, and render deploy artifacts.

Everything here is plan-then-apply: a :class:`~datatier.provision.plan.Provisioner` observes
one resource (a bucket, a server's schema), diffs it against the desired state derived from
the config and the backup policies, and applies only that difference. A saved plan carries a
fingerprint of what was observed; applying it refuses if the world changed since.
"""
