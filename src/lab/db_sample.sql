-- Sample rows for a lab's app database at KAMONOHASHI v2.1.0, so that a rehearsed rollback to
-- v2.0.0 has something to lose and something to keep: one tenant, three users, a data set,
-- tags of both types (1 = data, 2 = training; v2.1.0 down deletes type 2 with their links),
-- trainings with and without tags (one linked to a data tag), a parent link, notebooks (one
-- with an entry point), an inference and a TensorBoard with a lifetime.

INSERT INTO "Gits" ("Id", "CreatedBy", "CreatedAt", "ModifiedBy", "ModifiedAt", "Name", "ServiceType", "RepositoryUrl", "ApiUrl", "Token", "IsNotEditable")
VALUES (1, 'admin', '2020-07-01 09:00:00', 'admin', '2020-07-01 09:00:00', 'GitHub', 1, 'https://github.com', 'https://api.github.com', NULL, true);

INSERT INTO "Registries" ("Id", "CreatedBy", "CreatedAt", "ModifiedBy", "ModifiedAt", "Name", "Host", "PortNo", "ServiceType", "ProjectName", "ApiUrl", "RegistryUrl", "Password", "IsNotEditable")
VALUES (1, 'admin', '2020-07-01 09:00:00', 'admin', '2020-07-01 09:00:00', 'official-docker-hub', 'registry.hub.docker.com', 443, 1, NULL, 'https://registry.hub.docker.com/', 'https://registry.hub.docker.com/', NULL, true);

INSERT INTO "Storages" ("Id", "CreatedBy", "CreatedAt", "ModifiedBy", "ModifiedAt", "Name", "ServerAddress", "AccessKey", "SecretKey", "NfsServer", "NfsRoot")
VALUES (1, 'admin', '2020-07-01 09:00:00', 'admin', '2020-07-01 09:00:00', 'minio', 'node01:9000', 'lab-access', 'lab-sample-not-a-secret', 'node01', '/srv/kamonohashi/nfs');

INSERT INTO "Tenants" ("Id", "CreatedBy", "CreatedAt", "ModifiedBy", "ModifiedAt", "Name", "DisplayName", "StorageBucket", "StorageId", "DefaultGitId", "DefaultRegistryId", "LimitCpu", "LimitMemory", "LimitGpu", "AvailableInfiniteTimeNotebook")
VALUES (1, 'admin', '2020-07-01 09:00:00', 'admin', '2020-07-01 09:00:00', 'sandbox', 'Sandbox', 'sandbox', 1, 1, 1, NULL, NULL, NULL, false);

INSERT INTO "Users" ("Id", "CreatedBy", "CreatedAt", "ModifiedBy", "ModifiedAt", "Name", "Alias", "Password", "ServiceType", "DefaultTenantId") VALUES
(1, 'admin', '2020-07-01 09:00:00', 'admin', '2020-07-01 09:00:00', 'admin', 'Administrator', NULL, 1, 1),
(2, 'admin', '2020-07-01 09:00:00', 'admin', '2020-07-01 09:00:00', 'alice', 'Alice', NULL, 1, 1),
(3, 'admin', '2020-07-01 09:00:00', 'admin', '2020-07-01 09:00:00', 'bob', 'Bob', NULL, 1, 1);

INSERT INTO "UserTenantMaps" ("Id", "CreatedBy", "CreatedAt", "ModifiedBy", "ModifiedAt", "UserId", "TenantId", "ClusterToken") VALUES
(1, 'admin', '2020-07-01 09:00:00', 'admin', '2020-07-01 09:00:00', 1, 1, NULL),
(2, 'admin', '2020-07-01 09:00:00', 'admin', '2020-07-01 09:00:00', 2, 1, NULL),
(3, 'admin', '2020-07-01 09:00:00', 'admin', '2020-07-01 09:00:00', 3, 1, NULL);

INSERT INTO "DataTypes" ("Id", "CreatedBy", "CreatedAt", "ModifiedBy", "ModifiedAt", "TenantId", "Name", "SortOrder") VALUES
(1, 'admin', '2020-07-01 09:00:00', 'admin', '2020-07-01 09:00:00', 1, 'training', 1),
(2, 'admin', '2020-07-01 09:00:00', 'admin', '2020-07-01 09:00:00', 1, 'testing', 2);

INSERT INTO "Data" ("Id", "CreatedBy", "CreatedAt", "ModifiedBy", "ModifiedAt", "TenantId", "DisplayId", "Name", "Memo", "ParentDataId") VALUES
(1, 'alice', '2020-07-01 09:00:00', 'alice', '2020-07-01 09:00:00', 1, 1, 'mnist-train', NULL, NULL),
(2, 'alice', '2020-07-01 09:00:00', 'alice', '2020-07-01 09:00:00', 1, 2, 'mnist-test', NULL, NULL),
(3, 'bob', '2020-07-01 09:00:00', 'bob', '2020-07-01 09:00:00', 1, 3, 'cifar10', 'images', NULL);

INSERT INTO "DataSets" ("Id", "CreatedBy", "CreatedAt", "ModifiedBy", "ModifiedAt", "TenantId", "DisplayId", "Name", "Memo", "IsLocked")
VALUES (1, 'alice', '2020-07-01 09:00:00', 'alice', '2020-07-01 09:00:00', 1, 1, 'mnist', NULL, true);

INSERT INTO "DataSetEntries" ("Id", "CreatedBy", "CreatedAt", "ModifiedBy", "ModifiedAt", "TenantId", "DataSetId", "DataTypeId", "DataId") VALUES
(1, 'alice', '2020-07-01 09:00:00', 'alice', '2020-07-01 09:00:00', 1, 1, 1, 1),
(2, 'alice', '2020-07-01 09:00:00', 'alice', '2020-07-01 09:00:00', 1, 1, 2, 2);

INSERT INTO "Tags" ("Id", "CreatedBy", "CreatedAt", "ModifiedBy", "ModifiedAt", "TenantId", "Name", "Type") VALUES
(1, 'alice', '2020-07-01 09:00:00', 'alice', '2020-07-01 09:00:00', 1, 'mnist', 1),
(2, 'bob', '2020-07-01 09:00:00', 'bob', '2020-07-01 09:00:00', 1, 'image', 1),
(3, 'alice', '2020-07-02 09:00:00', 'alice', '2020-07-02 09:00:00', 1, 'baseline', 2),
(4, 'alice', '2020-07-02 09:00:00', 'alice', '2020-07-02 09:00:00', 1, 'tuned', 2);

INSERT INTO "DataTagMaps" ("Id", "CreatedBy", "CreatedAt", "ModifiedBy", "ModifiedAt", "TenantId", "DataId", "TagId") VALUES
(1, 'alice', '2020-07-01 09:00:00', 'alice', '2020-07-01 09:00:00', 1, 1, 1),
(2, 'alice', '2020-07-01 09:00:00', 'alice', '2020-07-01 09:00:00', 1, 2, 1),
(3, 'bob', '2020-07-01 09:00:00', 'bob', '2020-07-01 09:00:00', 1, 3, 2);

INSERT INTO "TrainingHistories" ("Id", "CreatedBy", "CreatedAt", "ModifiedBy", "ModifiedAt", "TenantId", "DisplayId", "Name", "ContainerRegistryId", "ContainerImage", "ContainerTag", "DataSetId", "ModelGitId", "ModelRepository", "ModelRepositoryOwner", "ModelBranch", "ModelCommitId", "EntryPoint", "Options", "Cpu", "Memory", "Gpu", "Partition", "Memo", "Status", "Configuration", "LogSummary", "Node", "StartedAt", "CompletedAt", "Favorite", "Zip", "Ports", "LocalDataSet") VALUES
(1, 'alice', '2020-07-02 10:00:00', 'alice', '2020-07-02 11:00:00', 1, 1, 'mnist-baseline', 1, 'tensorflow/tensorflow', '2.2.0-gpu', 1, 1, 'kamonohashi-samples', 'KAMONOHASHI', 'master', 'a1b2c3d', 'python train.py', NULL, 4, 8, 1, NULL, NULL, 'Completed', NULL, NULL, 'node02', '2020-07-02 10:01:00', '2020-07-02 11:00:00', false, true, NULL, false),
(2, 'alice', '2020-07-03 10:00:00', 'alice', '2020-07-03 12:00:00', 1, 2, 'mnist-tuned', 1, 'tensorflow/tensorflow', '2.2.0-gpu', 1, 1, 'kamonohashi-samples', 'KAMONOHASHI', 'master', 'e4f5a6b', 'python train.py --lr 0.01', NULL, 4, 8, 1, NULL, 'tuned learning rate', 'Completed', NULL, NULL, 'node02', '2020-07-03 10:01:00', '2020-07-03 12:00:00', true, true, NULL, true),
(3, 'bob', '2020-07-04 10:00:00', 'bob', '2020-07-04 10:00:00', 1, 3, 'cifar-try', 1, 'pytorch/pytorch', '1.5-cuda10.1-cudnn7-runtime', 1, 1, 'cifar', 'bob', NULL, 'c7d8e9f', 'python main.py', NULL, 2, 4, 0, NULL, NULL, 'Running', NULL, NULL, 'node02', '2020-07-04 10:01:00', NULL, false, true, NULL, false),
(4, 'bob', '2020-07-05 10:00:00', 'bob', '2020-07-05 10:00:00', 1, 4, 'mnist-rerun', 1, 'tensorflow/tensorflow', '2.2.0-gpu', 1, 1, 'kamonohashi-samples', 'KAMONOHASHI', 'master', 'a1b2c3d', 'python train.py', NULL, 4, 8, 1, NULL, NULL, 'Killed', NULL, NULL, NULL, NULL, NULL, false, true, NULL, false);

INSERT INTO "TrainingHistoryParentMaps" ("Id", "CreatedBy", "CreatedAt", "ModifiedBy", "ModifiedAt", "TenantId", "TrainingHistoryId", "ParentId")
VALUES (1, 'alice', '2020-07-03 10:00:00', 'alice', '2020-07-03 10:00:00', 1, 2, 1);

INSERT INTO "TrainingHistoryTagMaps" ("Id", "CreatedBy", "CreatedAt", "ModifiedBy", "ModifiedAt", "TenantId", "TrainingHistoryId", "TagId") VALUES
(1, 'alice', '2020-07-02 11:00:00', 'alice', '2020-07-02 11:00:00', 1, 1, 3),
(2, 'alice', '2020-07-03 12:00:00', 'alice', '2020-07-03 12:00:00', 1, 2, 3),
(3, 'alice', '2020-07-03 12:00:00', 'alice', '2020-07-03 12:00:00', 1, 2, 4),
(4, 'bob', '2020-07-05 10:00:00', 'bob', '2020-07-05 10:00:00', 1, 4, 1);

INSERT INTO "NotebookHistories" ("Id", "CreatedBy", "CreatedAt", "ModifiedBy", "ModifiedAt", "TenantId", "DisplayId", "Name", "ContainerRegistryId", "ContainerImage", "ContainerTag", "DataSetId", "ModelGitId", "ModelRepository", "ModelRepositoryOwner", "ModelBranch", "ModelCommitId", "Options", "Cpu", "Memory", "Gpu", "Partition", "Memo", "Status", "Configuration", "Node", "StartedAt", "CompletedAt", "ExpiresIn", "Favorite", "EntryPoint", "LocalDataSet") VALUES
(1, 'alice', '2020-07-06 09:00:00', 'alice', '2020-07-06 09:00:00', 1, 1, 'explore-mnist', 1, 'jupyter/tensorflow-notebook', 'latest', 1, NULL, NULL, NULL, NULL, NULL, NULL, 2, 4, 0, NULL, NULL, 'Running', NULL, 'node02', '2020-07-06 09:01:00', NULL, 28800, false, 'pip install -r requirements.txt', true),
(2, 'bob', '2020-07-06 10:00:00', 'bob', '2020-07-06 12:00:00', 1, 2, 'scratch', 1, 'jupyter/base-notebook', 'latest', NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1, 2, 0, NULL, NULL, 'Completed', NULL, 'node02', '2020-07-06 10:01:00', '2020-07-06 12:00:00', 0, false, NULL, false);

INSERT INTO "InferenceHistories" ("Id", "CreatedBy", "CreatedAt", "ModifiedBy", "ModifiedAt", "TenantId", "DisplayId", "Name", "ContainerRegistryId", "ContainerImage", "ContainerTag", "DataSetId", "ModelGitId", "ModelRepository", "ModelRepositoryOwner", "ModelBranch", "ModelCommitId", "EntryPoint", "Options", "Cpu", "Memory", "Gpu", "Partition", "Memo", "Status", "Configuration", "LogSummary", "Node", "StartedAt", "CompletedAt", "Favorite", "Zip", "LocalDataSet")
VALUES (1, 'alice', '2020-07-07 09:00:00', 'alice', '2020-07-07 09:30:00', 1, 1, 'mnist-eval', 1, 'tensorflow/tensorflow', '2.2.0-gpu', 1, 1, 'kamonohashi-samples', 'KAMONOHASHI', 'master', 'e4f5a6b', 'python predict.py', NULL, 2, 4, 1, NULL, NULL, 'Completed', NULL, NULL, 'node02', '2020-07-07 09:01:00', '2020-07-07 09:30:00', false, true, true);

INSERT INTO "TensorBoardContainers" ("Id", "CreatedBy", "CreatedAt", "ModifiedBy", "ModifiedAt", "TenantId", "TrainingHistoryId", "Name", "Host", "PortNo", "Status", "StartedAt", "ExpiresIn")
VALUES (1, 'alice', '2020-07-03 13:00:00', 'alice', '2020-07-03 13:00:00', 1, 2, 'tensorboard-2', 'node02', 30123, 'Running', '2020-07-03 13:00:00', 3600);

-- Explicit ids leave the sequences behind: move them past every sample row (all ids < 100), so
-- that rows the app (or a test) adds later get fresh ids.
SELECT setval(pg_get_serial_sequence(format('%I', t), 'Id'), 100)
FROM unnest(ARRAY['Gits', 'Registries', 'Storages', 'Tenants', 'Users', 'UserTenantMaps', 'DataTypes', 'Data', 'DataSets', 'DataSetEntries', 'Tags', 'DataTagMaps', 'TrainingHistories', 'TrainingHistoryParentMaps', 'TrainingHistoryTagMaps', 'NotebookHistories', 'InferenceHistories', 'TensorBoardContainers']) AS t;
