-- KAMONOHASHI v2.0.0 baseline (EF Core migration 20200319064613_v2.0.0).
--
-- The schema as KAMONOHASHI's web-api (Npgsql EF Core 2.1) leaves it after this migration,
-- written from the migration's model snapshot (20200319064613_v2.0.0.Designer.cs): the tables a
-- rebuild, a rollback and the app's core features touch, with EF Core's own names for tables,
-- columns, keys, foreign keys and indexes (quoted PascalCase). Tables of features no kamo step
-- reads (roles and menus, preprocessing, attached files, git/registry credentials per user,
-- node maps, settings) are left out; see README.md.
--
-- Runs inside one transaction that kamo opens. kamo creates "__EFMigrationsHistory" when it is
-- missing (as EF Core's own scripts do) and inserts this migration's row itself.

CREATE TABLE "Gits" (
    "Id" bigserial NOT NULL,
    "CreatedBy" text NOT NULL,
    "CreatedAt" timestamp without time zone NOT NULL,
    "ModifiedBy" text NOT NULL,
    "ModifiedAt" timestamp without time zone NOT NULL,
    "Name" text NOT NULL,
    "ServiceType" integer NOT NULL,
    "RepositoryUrl" text NOT NULL,
    "ApiUrl" text NOT NULL,
    "Token" text NULL,
    "IsNotEditable" boolean NOT NULL,
    CONSTRAINT "PK_Gits" PRIMARY KEY ("Id")
);

CREATE TABLE "Registries" (
    "Id" bigserial NOT NULL,
    "CreatedBy" text NOT NULL,
    "CreatedAt" timestamp without time zone NOT NULL,
    "ModifiedBy" text NOT NULL,
    "ModifiedAt" timestamp without time zone NOT NULL,
    "Name" text NOT NULL,
    "Host" text NOT NULL,
    "PortNo" integer NOT NULL,
    "ServiceType" integer NOT NULL,
    "ProjectName" text NULL,
    "ApiUrl" text NULL,
    "RegistryUrl" text NOT NULL,
    "Password" text NULL,
    "IsNotEditable" boolean NOT NULL,
    CONSTRAINT "PK_Registries" PRIMARY KEY ("Id")
);

CREATE TABLE "Storages" (
    "Id" bigserial NOT NULL,
    "CreatedBy" text NOT NULL,
    "CreatedAt" timestamp without time zone NOT NULL,
    "ModifiedBy" text NOT NULL,
    "ModifiedAt" timestamp without time zone NOT NULL,
    "Name" text NOT NULL,
    "ServerAddress" text NOT NULL,
    "AccessKey" text NOT NULL,
    "SecretKey" text NOT NULL,
    "NfsServer" text NOT NULL,
    "NfsRoot" text NOT NULL,
    CONSTRAINT "PK_Storages" PRIMARY KEY ("Id")
);

CREATE TABLE "Tenants" (
    "Id" bigserial NOT NULL,
    "CreatedBy" text NOT NULL,
    "CreatedAt" timestamp without time zone NOT NULL,
    "ModifiedBy" text NOT NULL,
    "ModifiedAt" timestamp without time zone NOT NULL,
    "Name" character varying(128) NOT NULL,
    "DisplayName" text NOT NULL,
    "StorageBucket" text NULL,
    "StorageId" bigint NULL,
    "DefaultGitId" bigint NOT NULL,
    "DefaultRegistryId" bigint NOT NULL,
    "LimitCpu" integer NULL,
    "LimitMemory" integer NULL,
    "LimitGpu" integer NULL,
    "AvailableInfiniteTimeNotebook" boolean NOT NULL,
    CONSTRAINT "PK_Tenants" PRIMARY KEY ("Id"),
    CONSTRAINT "FK_Tenants_Gits_DefaultGitId" FOREIGN KEY ("DefaultGitId") REFERENCES "Gits" ("Id") ON DELETE CASCADE,
    CONSTRAINT "FK_Tenants_Registries_DefaultRegistryId" FOREIGN KEY ("DefaultRegistryId") REFERENCES "Registries" ("Id") ON DELETE CASCADE,
    CONSTRAINT "FK_Tenants_Storages_StorageId" FOREIGN KEY ("StorageId") REFERENCES "Storages" ("Id") ON DELETE RESTRICT
);

CREATE TABLE "Users" (
    "Id" bigserial NOT NULL,
    "CreatedBy" text NOT NULL,
    "CreatedAt" timestamp without time zone NOT NULL,
    "ModifiedBy" text NOT NULL,
    "ModifiedAt" timestamp without time zone NOT NULL,
    "Name" text NOT NULL,
    "Alias" text NULL,
    "Password" text NULL,
    "ServiceType" integer NOT NULL,
    "DefaultTenantId" bigint NOT NULL,
    CONSTRAINT "PK_Users" PRIMARY KEY ("Id"),
    CONSTRAINT "FK_Users_Tenants_DefaultTenantId" FOREIGN KEY ("DefaultTenantId") REFERENCES "Tenants" ("Id") ON DELETE RESTRICT
);

CREATE TABLE "UserTenantMaps" (
    "Id" bigserial NOT NULL,
    "CreatedBy" text NOT NULL,
    "CreatedAt" timestamp without time zone NOT NULL,
    "ModifiedBy" text NOT NULL,
    "ModifiedAt" timestamp without time zone NOT NULL,
    "UserId" bigint NOT NULL,
    "TenantId" bigint NOT NULL,
    "ClusterToken" text NULL,
    CONSTRAINT "PK_UserTenantMaps" PRIMARY KEY ("Id"),
    CONSTRAINT "FK_UserTenantMaps_Tenants_TenantId" FOREIGN KEY ("TenantId") REFERENCES "Tenants" ("Id") ON DELETE CASCADE,
    CONSTRAINT "FK_UserTenantMaps_Users_UserId" FOREIGN KEY ("UserId") REFERENCES "Users" ("Id") ON DELETE CASCADE
);

CREATE TABLE "DataTypes" (
    "Id" bigserial NOT NULL,
    "CreatedBy" text NOT NULL,
    "CreatedAt" timestamp without time zone NOT NULL,
    "ModifiedBy" text NOT NULL,
    "ModifiedAt" timestamp without time zone NOT NULL,
    "TenantId" bigint NOT NULL,
    "Name" text NOT NULL,
    "SortOrder" integer NOT NULL,
    CONSTRAINT "PK_DataTypes" PRIMARY KEY ("Id"),
    CONSTRAINT "FK_DataTypes_Tenants_TenantId" FOREIGN KEY ("TenantId") REFERENCES "Tenants" ("Id") ON DELETE CASCADE
);

CREATE TABLE "Data" (
    "Id" bigserial NOT NULL,
    "CreatedBy" text NOT NULL,
    "CreatedAt" timestamp without time zone NOT NULL,
    "ModifiedBy" text NOT NULL,
    "ModifiedAt" timestamp without time zone NOT NULL,
    "TenantId" bigint NOT NULL,
    "DisplayId" bigint NULL,
    "Name" text NOT NULL,
    "Memo" text NULL,
    "ParentDataId" bigint NULL,
    CONSTRAINT "PK_Data" PRIMARY KEY ("Id"),
    CONSTRAINT "FK_Data_Data_ParentDataId" FOREIGN KEY ("ParentDataId") REFERENCES "Data" ("Id") ON DELETE RESTRICT,
    CONSTRAINT "FK_Data_Tenants_TenantId" FOREIGN KEY ("TenantId") REFERENCES "Tenants" ("Id") ON DELETE CASCADE
);

CREATE TABLE "DataSets" (
    "Id" bigserial NOT NULL,
    "CreatedBy" text NOT NULL,
    "CreatedAt" timestamp without time zone NOT NULL,
    "ModifiedBy" text NOT NULL,
    "ModifiedAt" timestamp without time zone NOT NULL,
    "TenantId" bigint NOT NULL,
    "DisplayId" bigint NULL,
    "Name" text NOT NULL,
    "Memo" text NULL,
    "IsLocked" boolean NOT NULL,
    CONSTRAINT "PK_DataSets" PRIMARY KEY ("Id"),
    CONSTRAINT "FK_DataSets_Tenants_TenantId" FOREIGN KEY ("TenantId") REFERENCES "Tenants" ("Id") ON DELETE CASCADE
);

CREATE TABLE "DataSetEntries" (
    "Id" bigserial NOT NULL,
    "CreatedBy" text NOT NULL,
    "CreatedAt" timestamp without time zone NOT NULL,
    "ModifiedBy" text NOT NULL,
    "ModifiedAt" timestamp without time zone NOT NULL,
    "TenantId" bigint NOT NULL,
    "DataSetId" bigint NOT NULL,
    "DataTypeId" bigint NOT NULL,
    "DataId" bigint NOT NULL,
    CONSTRAINT "PK_DataSetEntries" PRIMARY KEY ("Id"),
    CONSTRAINT "FK_DataSetEntries_Data_DataId" FOREIGN KEY ("DataId") REFERENCES "Data" ("Id") ON DELETE CASCADE,
    CONSTRAINT "FK_DataSetEntries_DataSets_DataSetId" FOREIGN KEY ("DataSetId") REFERENCES "DataSets" ("Id") ON DELETE CASCADE,
    CONSTRAINT "FK_DataSetEntries_DataTypes_DataTypeId" FOREIGN KEY ("DataTypeId") REFERENCES "DataTypes" ("Id") ON DELETE CASCADE,
    CONSTRAINT "FK_DataSetEntries_Tenants_TenantId" FOREIGN KEY ("TenantId") REFERENCES "Tenants" ("Id") ON DELETE CASCADE
);

CREATE TABLE "Tags" (
    "Id" bigserial NOT NULL,
    "CreatedBy" text NOT NULL,
    "CreatedAt" timestamp without time zone NOT NULL,
    "ModifiedBy" text NOT NULL,
    "ModifiedAt" timestamp without time zone NOT NULL,
    "TenantId" bigint NOT NULL,
    "Name" text NOT NULL,
    CONSTRAINT "PK_Tags" PRIMARY KEY ("Id"),
    CONSTRAINT "FK_Tags_Tenants_TenantId" FOREIGN KEY ("TenantId") REFERENCES "Tenants" ("Id") ON DELETE CASCADE
);

CREATE TABLE "DataTagMaps" (
    "Id" bigserial NOT NULL,
    "CreatedBy" text NOT NULL,
    "CreatedAt" timestamp without time zone NOT NULL,
    "ModifiedBy" text NOT NULL,
    "ModifiedAt" timestamp without time zone NOT NULL,
    "TenantId" bigint NOT NULL,
    "DataId" bigint NOT NULL,
    "TagId" bigint NOT NULL,
    CONSTRAINT "PK_DataTagMaps" PRIMARY KEY ("Id"),
    CONSTRAINT "FK_DataTagMaps_Data_DataId" FOREIGN KEY ("DataId") REFERENCES "Data" ("Id") ON DELETE CASCADE,
    CONSTRAINT "FK_DataTagMaps_Tags_TagId" FOREIGN KEY ("TagId") REFERENCES "Tags" ("Id") ON DELETE CASCADE,
    CONSTRAINT "FK_DataTagMaps_Tenants_TenantId" FOREIGN KEY ("TenantId") REFERENCES "Tenants" ("Id") ON DELETE CASCADE
);

CREATE TABLE "TrainingHistories" (
    "Id" bigserial NOT NULL,
    "CreatedBy" text NOT NULL,
    "CreatedAt" timestamp without time zone NOT NULL,
    "ModifiedBy" text NOT NULL,
    "ModifiedAt" timestamp without time zone NOT NULL,
    "TenantId" bigint NOT NULL,
    "DisplayId" bigint NULL,
    "Name" text NOT NULL,
    "ContainerRegistryId" bigint NOT NULL,
    "ContainerImage" text NOT NULL,
    "ContainerTag" text NOT NULL,
    "DataSetId" bigint NOT NULL,
    "ModelGitId" bigint NOT NULL,
    "ModelRepository" text NOT NULL,
    "ModelRepositoryOwner" text NOT NULL,
    "ModelBranch" text NULL,
    "ModelCommitId" text NOT NULL,
    "EntryPoint" text NOT NULL,
    "Options" text NULL,
    "Cpu" integer NOT NULL,
    "Memory" integer NOT NULL,
    "Gpu" integer NOT NULL,
    "Partition" text NULL,
    "Memo" text NULL,
    "Status" text NOT NULL,
    "Configuration" text NULL,
    "LogSummary" text NULL,
    "Node" text NULL,
    "StartedAt" timestamp without time zone NULL,
    "CompletedAt" timestamp without time zone NULL,
    "Favorite" boolean NOT NULL,
    "Zip" boolean NOT NULL,
    "Ports" text NULL,
    CONSTRAINT "PK_TrainingHistories" PRIMARY KEY ("Id"),
    CONSTRAINT "FK_TrainingHistories_Registries_ContainerRegistryId" FOREIGN KEY ("ContainerRegistryId") REFERENCES "Registries" ("Id") ON DELETE CASCADE,
    CONSTRAINT "FK_TrainingHistories_DataSets_DataSetId" FOREIGN KEY ("DataSetId") REFERENCES "DataSets" ("Id") ON DELETE CASCADE,
    CONSTRAINT "FK_TrainingHistories_Tenants_TenantId" FOREIGN KEY ("TenantId") REFERENCES "Tenants" ("Id") ON DELETE CASCADE
);

CREATE TABLE "TrainingHistoryParentMaps" (
    "Id" bigserial NOT NULL,
    "CreatedBy" text NOT NULL,
    "CreatedAt" timestamp without time zone NOT NULL,
    "ModifiedBy" text NOT NULL,
    "ModifiedAt" timestamp without time zone NOT NULL,
    "TenantId" bigint NOT NULL,
    "TrainingHistoryId" bigint NOT NULL,
    "ParentId" bigint NOT NULL,
    CONSTRAINT "PK_TrainingHistoryParentMaps" PRIMARY KEY ("Id"),
    CONSTRAINT "FK_TrainingHistoryParentMaps_TrainingHistories_ParentId" FOREIGN KEY ("ParentId") REFERENCES "TrainingHistories" ("Id") ON DELETE CASCADE,
    CONSTRAINT "FK_TrainingHistoryParentMaps_Tenants_TenantId" FOREIGN KEY ("TenantId") REFERENCES "Tenants" ("Id") ON DELETE CASCADE,
    CONSTRAINT "FK_TrainingHistoryParentMaps_TrainingHistories_TrainingHistory~" FOREIGN KEY ("TrainingHistoryId") REFERENCES "TrainingHistories" ("Id") ON DELETE CASCADE
);

CREATE TABLE "TrainingHistoryTagMaps" (
    "Id" bigserial NOT NULL,
    "CreatedBy" text NOT NULL,
    "CreatedAt" timestamp without time zone NOT NULL,
    "ModifiedBy" text NOT NULL,
    "ModifiedAt" timestamp without time zone NOT NULL,
    "TenantId" bigint NOT NULL,
    "TrainingHistoryId" bigint NOT NULL,
    "TagId" bigint NOT NULL,
    CONSTRAINT "PK_TrainingHistoryTagMaps" PRIMARY KEY ("Id"),
    CONSTRAINT "FK_TrainingHistoryTagMaps_Tags_TagId" FOREIGN KEY ("TagId") REFERENCES "Tags" ("Id") ON DELETE CASCADE,
    CONSTRAINT "FK_TrainingHistoryTagMaps_Tenants_TenantId" FOREIGN KEY ("TenantId") REFERENCES "Tenants" ("Id") ON DELETE CASCADE,
    CONSTRAINT "FK_TrainingHistoryTagMaps_TrainingHistories_TrainingHistoryId" FOREIGN KEY ("TrainingHistoryId") REFERENCES "TrainingHistories" ("Id") ON DELETE CASCADE
);

CREATE TABLE "NotebookHistories" (
    "Id" bigserial NOT NULL,
    "CreatedBy" text NOT NULL,
    "CreatedAt" timestamp without time zone NOT NULL,
    "ModifiedBy" text NOT NULL,
    "ModifiedAt" timestamp without time zone NOT NULL,
    "TenantId" bigint NOT NULL,
    "DisplayId" bigint NULL,
    "Name" text NOT NULL,
    "ContainerRegistryId" bigint NULL,
    "ContainerImage" text NOT NULL,
    "ContainerTag" text NOT NULL,
    "DataSetId" bigint NULL,
    "ModelGitId" bigint NULL,
    "ModelRepository" text NULL,
    "ModelRepositoryOwner" text NULL,
    "ModelBranch" text NULL,
    "ModelCommitId" text NULL,
    "Options" text NULL,
    "Cpu" integer NOT NULL,
    "Memory" integer NOT NULL,
    "Gpu" integer NOT NULL,
    "Partition" text NULL,
    "Memo" text NULL,
    "Status" text NOT NULL,
    "Configuration" text NULL,
    "Node" text NULL,
    "StartedAt" timestamp without time zone NULL,
    "CompletedAt" timestamp without time zone NULL,
    "ExpiresIn" integer NOT NULL,
    "Favorite" boolean NOT NULL,
    CONSTRAINT "PK_NotebookHistories" PRIMARY KEY ("Id"),
    CONSTRAINT "FK_NotebookHistories_Registries_ContainerRegistryId" FOREIGN KEY ("ContainerRegistryId") REFERENCES "Registries" ("Id") ON DELETE RESTRICT,
    CONSTRAINT "FK_NotebookHistories_DataSets_DataSetId" FOREIGN KEY ("DataSetId") REFERENCES "DataSets" ("Id") ON DELETE RESTRICT,
    CONSTRAINT "FK_NotebookHistories_Tenants_TenantId" FOREIGN KEY ("TenantId") REFERENCES "Tenants" ("Id") ON DELETE CASCADE
);

CREATE TABLE "InferenceHistories" (
    "Id" bigserial NOT NULL,
    "CreatedBy" text NOT NULL,
    "CreatedAt" timestamp without time zone NOT NULL,
    "ModifiedBy" text NOT NULL,
    "ModifiedAt" timestamp without time zone NOT NULL,
    "TenantId" bigint NOT NULL,
    "DisplayId" bigint NULL,
    "Name" text NOT NULL,
    "ContainerRegistryId" bigint NOT NULL,
    "ContainerImage" text NOT NULL,
    "ContainerTag" text NOT NULL,
    "DataSetId" bigint NOT NULL,
    "ModelGitId" bigint NOT NULL,
    "ModelRepository" text NOT NULL,
    "ModelRepositoryOwner" text NOT NULL,
    "ModelBranch" text NULL,
    "ModelCommitId" text NOT NULL,
    "EntryPoint" text NOT NULL,
    "Options" text NULL,
    "Cpu" integer NOT NULL,
    "Memory" integer NOT NULL,
    "Gpu" integer NOT NULL,
    "Partition" text NULL,
    "Memo" text NULL,
    "Status" text NOT NULL,
    "Configuration" text NULL,
    "LogSummary" text NULL,
    "Node" text NULL,
    "StartedAt" timestamp without time zone NULL,
    "CompletedAt" timestamp without time zone NULL,
    "Favorite" boolean NOT NULL,
    "Zip" boolean NOT NULL,
    CONSTRAINT "PK_InferenceHistories" PRIMARY KEY ("Id"),
    CONSTRAINT "FK_InferenceHistories_Registries_ContainerRegistryId" FOREIGN KEY ("ContainerRegistryId") REFERENCES "Registries" ("Id") ON DELETE CASCADE,
    CONSTRAINT "FK_InferenceHistories_DataSets_DataSetId" FOREIGN KEY ("DataSetId") REFERENCES "DataSets" ("Id") ON DELETE CASCADE,
    CONSTRAINT "FK_InferenceHistories_Tenants_TenantId" FOREIGN KEY ("TenantId") REFERENCES "Tenants" ("Id") ON DELETE CASCADE
);

CREATE TABLE "TensorBoardContainers" (
    "Id" bigserial NOT NULL,
    "CreatedBy" text NOT NULL,
    "CreatedAt" timestamp without time zone NOT NULL,
    "ModifiedBy" text NOT NULL,
    "ModifiedAt" timestamp without time zone NOT NULL,
    "TenantId" bigint NOT NULL,
    "TrainingHistoryId" bigint NOT NULL,
    "Name" text NOT NULL,
    "Host" text NULL,
    "PortNo" integer NULL,
    "Status" text NOT NULL,
    "StartedAt" timestamp without time zone NOT NULL,
    CONSTRAINT "PK_TensorBoardContainers" PRIMARY KEY ("Id"),
    CONSTRAINT "FK_TensorBoardContainers_Tenants_TenantId" FOREIGN KEY ("TenantId") REFERENCES "Tenants" ("Id") ON DELETE CASCADE,
    CONSTRAINT "FK_TensorBoardContainers_TrainingHistories_TrainingHistoryId" FOREIGN KEY ("TrainingHistoryId") REFERENCES "TrainingHistories" ("Id") ON DELETE CASCADE
);

CREATE INDEX "IX_Tenants_DefaultGitId" ON "Tenants" ("DefaultGitId");
CREATE INDEX "IX_Tenants_DefaultRegistryId" ON "Tenants" ("DefaultRegistryId");
CREATE UNIQUE INDEX "IX_Tenants_Name" ON "Tenants" ("Name");
CREATE INDEX "IX_Tenants_StorageId" ON "Tenants" ("StorageId");
CREATE UNIQUE INDEX "IX_Registries_Name" ON "Registries" ("Name");
CREATE INDEX "IX_Users_DefaultTenantId" ON "Users" ("DefaultTenantId");
CREATE INDEX "IX_UserTenantMaps_UserId" ON "UserTenantMaps" ("UserId");
CREATE UNIQUE INDEX "IX_UserTenantMaps_TenantId_UserId" ON "UserTenantMaps" ("TenantId", "UserId");
CREATE INDEX "IX_DataTypes_TenantId" ON "DataTypes" ("TenantId");
CREATE INDEX "IX_Data_ParentDataId" ON "Data" ("ParentDataId");
CREATE INDEX "IX_Data_TenantId" ON "Data" ("TenantId");
CREATE INDEX "IX_DataSets_TenantId" ON "DataSets" ("TenantId");
CREATE INDEX "IX_DataSetEntries_DataId" ON "DataSetEntries" ("DataId");
CREATE INDEX "IX_DataSetEntries_DataSetId" ON "DataSetEntries" ("DataSetId");
CREATE INDEX "IX_DataSetEntries_DataTypeId" ON "DataSetEntries" ("DataTypeId");
CREATE INDEX "IX_DataSetEntries_TenantId" ON "DataSetEntries" ("TenantId");
CREATE INDEX "IX_Tags_TenantId" ON "Tags" ("TenantId");
CREATE INDEX "IX_DataTagMaps_DataId" ON "DataTagMaps" ("DataId");
CREATE INDEX "IX_DataTagMaps_TagId" ON "DataTagMaps" ("TagId");
CREATE INDEX "IX_DataTagMaps_TenantId" ON "DataTagMaps" ("TenantId");
CREATE INDEX "IX_TrainingHistories_ContainerRegistryId" ON "TrainingHistories" ("ContainerRegistryId");
CREATE INDEX "IX_TrainingHistories_DataSetId" ON "TrainingHistories" ("DataSetId");
CREATE INDEX "IX_TrainingHistories_TenantId" ON "TrainingHistories" ("TenantId");
CREATE INDEX "IX_TrainingHistoryParentMaps_ParentId" ON "TrainingHistoryParentMaps" ("ParentId");
CREATE INDEX "IX_TrainingHistoryParentMaps_TrainingHistoryId" ON "TrainingHistoryParentMaps" ("TrainingHistoryId");
CREATE UNIQUE INDEX "IX_TrainingHistoryParentMaps_TenantId_TrainingHistoryId_Parent~" ON "TrainingHistoryParentMaps" ("TenantId", "TrainingHistoryId", "ParentId");
CREATE INDEX "IX_TrainingHistoryTagMaps_TagId" ON "TrainingHistoryTagMaps" ("TagId");
CREATE INDEX "IX_TrainingHistoryTagMaps_TenantId" ON "TrainingHistoryTagMaps" ("TenantId");
CREATE INDEX "IX_TrainingHistoryTagMaps_TrainingHistoryId" ON "TrainingHistoryTagMaps" ("TrainingHistoryId");
CREATE INDEX "IX_NotebookHistories_ContainerRegistryId" ON "NotebookHistories" ("ContainerRegistryId");
CREATE INDEX "IX_NotebookHistories_DataSetId" ON "NotebookHistories" ("DataSetId");
CREATE INDEX "IX_NotebookHistories_TenantId" ON "NotebookHistories" ("TenantId");
CREATE INDEX "IX_InferenceHistories_ContainerRegistryId" ON "InferenceHistories" ("ContainerRegistryId");
CREATE INDEX "IX_InferenceHistories_DataSetId" ON "InferenceHistories" ("DataSetId");
CREATE INDEX "IX_InferenceHistories_TenantId" ON "InferenceHistories" ("TenantId");
CREATE INDEX "IX_TensorBoardContainers_TenantId" ON "TensorBoardContainers" ("TenantId");
CREATE INDEX "IX_TensorBoardContainers_TrainingHistoryId" ON "TensorBoardContainers" ("TrainingHistoryId");
