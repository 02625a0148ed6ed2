-- Reverts KAMONOHASHI v2.1.0 (EF Core migration 20200615001935_v2.1.0), as Down() of the
-- migration does. Data lost: every TensorBoard container's lifetime, every notebook's entry
-- point, the tags of type Training ("Type" = 2, which only v2.1.0 creates) with their links to
-- trainings and data, and the LocalDataSet flags.
--
-- Runs inside one transaction that kamo opens; kamo deletes the "__EFMigrationsHistory" row.

ALTER TABLE "TensorBoardContainers" DROP COLUMN "ExpiresIn";

ALTER TABLE "NotebookHistories" DROP COLUMN "EntryPoint";

-- The links go first: the foreign keys cascade, but saying so keeps the data loss visible.
DELETE FROM "TrainingHistoryTagMaps" WHERE "TagId" IN (SELECT "Id" FROM "Tags" WHERE "Type" = 2);

DELETE FROM "DataTagMaps" WHERE "TagId" IN (SELECT "Id" FROM "Tags" WHERE "Type" = 2);

DELETE FROM "Tags" WHERE "Type" = 2;

ALTER TABLE "Tags" DROP COLUMN "Type";

ALTER TABLE "TrainingHistories" DROP COLUMN "LocalDataSet";

ALTER TABLE "NotebookHistories" DROP COLUMN "LocalDataSet";

ALTER TABLE "InferenceHistories" DROP COLUMN "LocalDataSet";
