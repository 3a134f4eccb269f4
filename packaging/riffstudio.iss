; Inno Setup script: an installer for the app folder dist\riffstudio\ (build it first with
; `python packaging\build.py`). One installer per architecture, as the app folder is:
;   iscc /DArch=arm64 packaging\riffstudio.iss     (on the ARM64 build: Snapdragon laptops)
;   iscc /DArch=x64 packaging\riffstudio.iss       (on the x64 build)
; Per-user install (no administrator rights: a DAW and riffstudio must run at the same level for drag
; and drop, see README), Start menu entry, optional desktop icon, an uninstaller.

#ifndef Arch
  #define Arch "arm64"
#endif
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif

[Setup]
AppId={{6C0F3F7E-4E0B-4C4F-9C59-52A1F1D6C0A1}
AppName=Riffstudio
AppVersion={#AppVersion}
AppPublisher=Riffstudio
DefaultDirName={autopf}\Riffstudio
DefaultGroupName=Riffstudio
PrivilegesRequired=lowest
ArchitecturesAllowed={#Arch}
ArchitecturesInstallIn64BitMode={#Arch}
OutputDir=..\dist
OutputBaseFilename=riffstudio-{#AppVersion}-windows-{#Arch}-setup
SetupIconFile=..\build\riffstudio.ico
UninstallDisplayIcon={app}\riffstudio.exe
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
; Close a running riffstudio (and its engine, which holds the app folder's DLLs) through the Restart Manager.
CloseApplications=yes

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[InstallDelete]
; An upgrade replaces the libraries whole: files of the previous version that this one no longer ships
; (another onnxruntime or Qt build) would otherwise stay in _internal and be loaded beside the new ones.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "..\dist\riffstudio\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\Riffstudio"; Filename: "{app}\riffstudio.exe"
Name: "{group}\Riffstudio self-test"; Filename: "{cmd}"; Parameters: "/k ""{app}\riffstudio-cli.exe"" --self-test"
Name: "{group}\Uninstall Riffstudio"; Filename: "{uninstallexe}"
Name: "{autodesktop}\Riffstudio"; Filename: "{app}\riffstudio.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\riffstudio.exe"; Description: "{cm:LaunchProgram,Riffstudio}"; Flags: nowait postinstall skipifsilent

[Code]
// The engine runs detached and outlives the window: stop it before its DLLs are replaced (an upgrade) or
// removed (uninstall). `engine stop` waits for it to exit; queued jobs stay in the journal for the next one.
procedure StopEngine();
var
  ResultCode: Integer;
begin
  if FileExists(ExpandConstant('{app}\riffstudio-cli.exe')) then
    Exec(ExpandConstant('{app}\riffstudio-cli.exe'), 'engine stop', '', SW_HIDE, ewWaitUntilTerminated, ResultCode);
end;

function PrepareToInstall(var NeedsRestart: Boolean): String;
begin
  StopEngine();
  Result := '';
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if CurUninstallStep = usUninstall then
    StopEngine();
end;
