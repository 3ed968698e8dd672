"""Projects, membership and the overview numbers the entry page shows."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from core.accounts.auth import admin_project, check_admin
from core.accounts.events import log_event
from core.errors import NotFound, XmtcError
from storage.db import Database
from storage.models import (
    Document,
    DocumentLabel,
    Job,
    Label,
    Membership,
    ModelVersion,
    Project,
    TaxonomyVersion,
    User,
)


def create_project(db: Database, name: str, description: str = "", user_id: int | None = None) -> int:
    """Create an empty project and return its id.

    Raises:
        XmtcError: empty or taken name.
    """
    name = name.strip()
    if not name:
        raise XmtcError("A project needs a name.")
    with db.session() as s:
        check_admin(s, user_id)
        if s.scalar(select(Project).where(Project.name == name)):
            raise XmtcError(f"A project named {name!r} exists already.")
        project = Project(name=name, description=description)
        s.add(project)
        s.flush()
        if user_id is not None:
            s.add(Membership(project_id=project.id, user_id=user_id))
        log_event(s, "project_created", project.id, user_id, name=name)
        return project.id


def delete_project(db: Database, project_id: int, user_id: int | None = None) -> None:
    """Delete a project and everything in it (documents, labels, jobs cascade)."""
    with db.session() as s:
        project = admin_project(s, user_id, project_id)
        project.active_model_version_id = None
        project.active_taxonomy_version_id = None
        s.flush()
        s.delete(project)
        log_event(s, "project_deleted", None, user_id, name=project.name, project_id=project_id)


def add_member(db: Database, project_id: int, username: str, by_user_id: int | None = None) -> None:
    """Give a user access to a project (idempotent)."""
    with db.session() as s:
        check_admin(s, by_user_id)
        user = s.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"No user named {username!r}.")
        exists = s.scalar(select(Membership).where(Membership.project_id == project_id, Membership.user_id == user.id))
        if not exists:
            s.add(Membership(project_id=project_id, user_id=user.id))
            log_event(s, "member_added", project_id, by_user_id, username=username)


@dataclass
class Overview:
    """What a project holds right now."""

    name: str
    documents: int
    documents_by_split: dict[str, int]
    labels: int
    labels_deprecated: int
    labels_in_use: int
    assignments: int
    taxonomy_version: str | None
    model_version: str | None
    jobs_by_status: dict[str, int]


def overview(db: Database, project_id: int) -> Overview:
    """Counts for the project overview."""
    with db.session() as s:
        project = s.get(Project, project_id)
        if project is None:
            raise NotFound(f"Project {project_id} does not exist.")
        splits = dict(s.execute(select(func.coalesce(Document.split, "none"), func.count())
                                .where(Document.project_id == project_id, Document.removed.is_(False))
                                .group_by(Document.split)).all())
        labels = dict(s.execute(select(Label.deprecated, func.count()).where(Label.project_id == project_id)
                                .group_by(Label.deprecated)).all())
        doc_ids = select(Document.id).where(Document.project_id == project_id)
        assignments, in_use = s.execute(
            select(func.count(), func.count(func.distinct(DocumentLabel.label_id)))
            .where(DocumentLabel.document_id.in_(doc_ids))
        ).one()
        jobs = dict(s.execute(select(Job.status, func.count()).where(Job.project_id == project_id)
                              .group_by(Job.status)).all())
        tax = s.get(TaxonomyVersion, project.active_taxonomy_version_id) if project.active_taxonomy_version_id else None
        model = s.get(ModelVersion, project.active_model_version_id) if project.active_model_version_id else None
        return Overview(
            name=project.name,
            documents=sum(splits.values()),
            documents_by_split=splits,
            labels=sum(labels.values()),
            labels_deprecated=labels.get(True, 0),
            labels_in_use=in_use,
            assignments=assignments,
            taxonomy_version=tax.name if tax else None,
            model_version=f"v{model.number} ({model.kind})" if model else None,
            jobs_by_status=jobs,
        )
