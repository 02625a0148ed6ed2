-- Reverts the v2.0.0 baseline: drops every table up.sql created, and with them ALL DATA.
--
-- There is nothing older to go back to: kamo never runs this as part of a version rollback
-- (the baseline is the oldest target it offers); it exists so that a scratch database (tests,
-- `kamo lab`) can be emptied with the same machinery. "__EFMigrationsHistory" is kamo's to
-- manage and stays.

DROP TABLE "TensorBoardContainers";
DROP TABLE "InferenceHistories";
DROP TABLE "NotebookHistories";
DROP TABLE "TrainingHistoryTagMaps";
DROP TABLE "TrainingHistoryParentMaps";
DROP TABLE "TrainingHistories";
DROP TABLE "DataTagMaps";
DROP TABLE "Tags";
DROP TABLE "DataSetEntries";
DROP TABLE "DataSets";
DROP TABLE "Data";
DROP TABLE "DataTypes";
DROP TABLE "UserTenantMaps";
DROP TABLE "Users";
DROP TABLE "Tenants";
DROP TABLE "Storages";
DROP TABLE "Registries";
DROP TABLE "Gits";
