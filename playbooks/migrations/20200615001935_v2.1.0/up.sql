-- KAMONOHASHI v2.1.0 (EF Core migration 20200615001935_v2.1.0), as Up() of the migration does:
-- TensorBoard containers get a lifetime, notebooks an entry point, tags a type (every existing
-- tag came from data management: Type 1), and trainings, notebooks and inferences a flag for
-- copying their data set to the node first.
--
-- Runs inside one transaction that kamo opens; kamo inserts the "__EFMigrationsHistory" row.

ALTER TABLE "TensorBoardContainers" ADD "ExpiresIn" integer NOT NULL DEFAULT 0;

ALTER TABLE "NotebookHistories" ADD "EntryPoint" text NULL;

ALTER TABLE "Tags" ADD "Type" integer NOT NULL DEFAULT 0;

UPDATE "Tags" SET "Type" = 1;

ALTER TABLE "TrainingHistories" ADD "LocalDataSet" boolean NOT NULL DEFAULT FALSE;

ALTER TABLE "NotebookHistories" ADD "LocalDataSet" boolean NOT NULL DEFAULT FALSE;

ALTER TABLE "InferenceHistories" ADD "LocalDataSet" boolean NOT NULL DEFAULT FALSE;
