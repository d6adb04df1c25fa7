; Inno Setup script of the Windows installer: wraps the one-folder app of tilesapp.spec.
; Built by packaging/windows-installer.sh (which passes AppVersion and BundleDir), or by hand:
;   iscc /DAppVersion=0.1.0 packaging\tilesapp.iss
; Installs per user by default (no administrator needed); the setup offers all users.

#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=X.Y.Z tilesapp.iss (packaging/windows-installer.sh does)
#endif
#ifndef BundleDir
  #define BundleDir "..\dist\TilesCreator"
#endif
#define AppName "Tiles Creator"
#define AppExe "TilesCreator.exe"

[Setup]
; AppId identifies the product for upgrades and uninstall: never change it.
AppId={{D6683C46-B153-40E2-B61D-510B5B546A4F}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=Tiles Creator developers
VersionInfoVersion={#AppVersion}
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\dist
OutputBaseFilename=TilesCreator-{#AppVersion}-windows-x64-setup
SetupIconFile=..\resources\tilesapp.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName} {#AppVersion}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
; TilesCreator.exe (windowed, for double-click) and tilesapp.exe (console, for scripts) share
; the _internal folder next to them.
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent
